"""RabbitMQ, the Cloud Pub/Sub emulator and Prometheus, each a private instance on 127.0.0.1 free ports."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.certificates import CertificateSet
from devstack.polling import wait_until
from devstack.process import ManagedProcess, free_port, port_open

START_TIMEOUT_SECONDS = 90.0
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


@dataclass
class RabbitMQ:
    """A private RabbitMQ node (own name, ports, data and logs) with the management and Prometheus plugins.

    With `tls`, TLS listeners too (amqps:// on `amqps_port`, https:// management on `management_tls_port`)
    serving its server certificate, beside the plain ones; `require_client_certificate` makes both TLS
    listeners refuse a client without a certificate the CA signed."""

    directory: Path
    amqp_port: int = 0
    management_port: int = 0
    prometheus_port: int = 0
    user: str = "guest"  # the default user may only connect from loopback, which is all we use
    password: str = "guest"
    process: ManagedProcess | None = None
    tls: CertificateSet | None = None
    require_client_certificate: bool = False
    amqps_port: int = 0
    management_tls_port: int = 0

    @property
    def amqps_url(self) -> str:
        return f"amqps://{self.user}:{self.password}@127.0.0.1:{self.amqps_port}/"

    @property
    def management_tls_url(self) -> str:
        return f"https://127.0.0.1:{self.management_tls_port}"

    def _tls_config(self) -> str:
        if self.tls is None:
            return ""
        self.amqps_port, self.management_tls_port = free_port(), free_port()
        verify = "verify_peer" if self.require_client_certificate else "verify_none"
        required = str(self.require_client_certificate).lower()
        files = {
            "cacertfile": self.tls.ca_cert,
            "certfile": self.tls.server_cert,
            "keyfile": self.tls.server_key,
        }
        lines = [f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}"]
        for prefix in ("ssl_options", "management.ssl"):
            lines += [f"{prefix}.{name} = {path}" for name, path in files.items()]
            lines += [f"{prefix}.verify = {verify}", f"{prefix}.fail_if_no_peer_cert = {required}"]
        lines += ["management.ssl.ip = 127.0.0.1", f"management.ssl.port = {self.management_tls_port}"]
        return "\n".join(lines) + "\n"

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> None:
        if not Path(RABBITMQ_SERVER).exists():
            raise RuntimeError("rabbitmq-server is not installed: run scripts/bootstrap.sh")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.amqp_port, self.management_port, self.prometheus_port = free_port(), free_port(), free_port()
        config = self.directory / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {self.prometheus_port}\n"
            "collect_statistics_interval = 1000\nloopback_users = none\n" + self._tls_config()
        )
        plugins = self.directory / "enabled_plugins"
        plugins.write_text("[rabbitmq_management,rabbitmq_prometheus].\n")
        env = {
            "RABBITMQ_NODENAME": f"qc-test-{self.amqp_port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_LOGS": "-",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "HOME": str(Path.home()),
        }
        self.process = ManagedProcess("rabbitmq", [RABBITMQ_SERVER], self.directory / "rabbitmq.log", env)
        self.process.start()
        self.process.wait_ready(self._management_answers, START_TIMEOUT_SECONDS)

    def _management_answers(self) -> bool:
        # The management listener starts before the client listeners: wait for those too.
        listeners = [self.amqp_port, *([self.amqps_port] if self.tls else [])]
        return bool(self.api("GET", "/api/overview").get("node")) and all(map(port_open, listeners))

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        """Call the management HTTP API as the admin user; returns decoded JSON (or {} for empty bodies)."""
        credentials = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            self.management_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def queue_counts(self, queue: str, vhost: str = "/") -> dict[str, int]:
        info = self.api("GET", f"/api/queues/{urllib.parse.quote(vhost, safe='')}/{queue}")
        return {k: int(info.get(k, 0)) for k in ("messages_ready", "messages_unacknowledged", "messages")}

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def log_paths(self) -> list[Path]:
        return [self.process.log_path] if self.process else []


def gcloud_sdk_root() -> Path:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise RuntimeError(
            "the Google Cloud CLI is missing: the Pub/Sub emulator ships with the machine image "
            "(Debian google-cloud-cli-pubsub-emulator) and cannot be installed here"
        )
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Path(root)


@dataclass
class PubSubEmulator:
    """The official Cloud Pub/Sub emulator (Java) shipped with the Google Cloud CLI."""

    directory: Path
    port: int = 0
    project: str = "qc-test"
    process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        """The value for PUBSUB_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        launcher = gcloud_sdk_root() / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
        if not launcher.exists():
            raise RuntimeError(
                f"the Pub/Sub emulator is missing at {launcher} (google-cloud-cli-pubsub-emulator)"
            )
        self.port = free_port()
        self.process = ManagedProcess(
            "pubsub-emulator",
            [str(launcher), "--host=127.0.0.1", f"--port={self.port}"],
            self.directory / "pubsub-emulator.log",
        )
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.port), START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def log_paths(self) -> list[Path]:
        return [self.process.log_path] if self.process else []


@dataclass
class Prometheus:
    """Prometheus scraping every 1 s the targets tests add through file-based service discovery."""

    directory: Path
    port: int = 0
    scrape_interval_seconds: float = 1.0
    process: ManagedProcess | None = None
    _targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets_dir(self) -> Path:
        return self.directory / "targets"

    def start(self, rule_files: list[Path] | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus is not installed: run scripts/bootstrap.sh (Debian package prometheus)"
            )
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        interval = f"{self.scrape_interval_seconds:g}s"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [
                {
                    "job_name": "tests",
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(json.dumps(config))
        self.port = free_port()
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]
        self.process = ManagedProcess("prometheus", argv, self.directory / "prometheus.log")
        self.process.start()
        self.process.wait_ready(
            lambda: _get(f"{self.url}/-/ready").startswith(b"Prometheus"), START_TIMEOUT_SECONDS
        )

    def add_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> None:
        """Scrape `address` (host:port, path /metrics) from now on; `labels` are attached to its series."""
        entry = {"targets": [address], "labels": {"instance_name": name, **(labels or {})}}
        path = self.targets_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([entry]))
        os.replace(tmp, path)  # atomic, so discovery never reads half a file

    def remove_target(self, name: str) -> None:
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; returns the result vector (raises on a PromQL error)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = json.loads(_get(url))
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for(self, promql: str, timeout_seconds: float = 30.0) -> list[dict[str, Any]]:
        """Poll until `promql` returns a non-empty result; raise TimeoutError with the last answer."""
        return wait_until(
            lambda: self.query(promql),
            timeout_seconds,
            f"{promql!r} to return a series",
            interval_seconds=0.5,
        )

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def log_paths(self) -> list[Path]:
        return [self.process.log_path] if self.process else []


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())
