"""Google credentials as Google's libraries do them, for the operator's Cloud Monitoring reads: Application
Default Credentials from the metadata server (Workload Identity on GKE) and a service-account key from a
Secret, each refreshed before it expires — the operator, a real `qc-operator run` process on the real
apiserver, keeps reading with no SourceError while the tokens it is given expire under it.

No Google endpoint can be reached here, so three stand-ins on loopback play them, and say so:
  - a GKE metadata server (google-auth honours GCE_METADATA_HOST / GCE_METADATA_IP),
  - an OAuth2 token endpoint for key files (the key's own `token_uri`),
  - Cloud Monitoring's timeSeries.list, which refuses any token it did not issue or that has expired.
Tokens are issued for TOKEN_LIFETIME_SECONDS; google-auth refreshes 225 s before expiry, so each is used
for about 5 s and the run sees several refreshes of each kind.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from devstack.process import ManagedProcess, free_port
from qc_common import api
from tests.operator.operator_harness import (
    QuietHandler,
    condition,
    create,
    create_secret,
    get_qc,
    new_namespace,
    serving,
)

TOKEN_LIFETIME_SECONDS = 230
UNDELIVERED = 1234


class GoogleStandIn(QuietHandler):
    """Metadata server + token endpoint + Monitoring API in one loopback server (the class keeps its log)."""

    issued: ClassVar[dict[str, float]] = {}  # token -> expiry (wall clock)
    served: ClassVar[list[str]] = []  # the token behind every monitoring answer
    refused: ClassVar[list[str]] = []
    lock = threading.Lock()

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _issue(self, prefix: str) -> dict[str, Any]:
        with self.lock:
            token = f"{prefix}-{len(self.issued) + 1}"
            self.issued[token] = time.time() + TOKEN_LIFETIME_SECONDS
        return {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS, "token_type": "Bearer"}

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        path = urllib.parse.urlsplit(self.path).path
        flavor = {"Metadata-Flavor": "Google"}
        if path in ("", "/", "/computeMetadata/v1/"):  # google-auth's "are we on GCE" ping
            self._json(200, {}, flavor)
        elif "/service-accounts/" in path and path.endswith("/token"):  # "default", or the account's email
            if self.headers.get("Metadata-Flavor") != "Google":
                self._json(403, {"error": "missing Metadata-Flavor"})
                return
            self._json(200, self._issue("metadata"), flavor)
        elif "/service-accounts/" in path:
            info = {"email": "qc-operator@proj.iam.gserviceaccount.com", "scopes": [], "aliases": ["default"]}
            self._json(200, info, flavor)
        elif path.endswith("/universe/universe-domain"):
            self._json(200, "googleapis.com", flavor)
        elif path.endswith("/timeSeries"):
            self._monitoring()
        else:
            self._json(404, {"error": path})

    def _monitoring(self) -> None:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.lock:
            expiry = self.issued.get(token)
            if expiry is None or expiry <= time.time():
                self.refused.append(token)
                self._json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
                return
            self.served.append(token)
        point = {"value": {"int64Value": str(UNDELIVERED)}}
        self._json(200, {"timeSeries": [{"points": [point]}]})

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if (
            form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
            or "assertion" not in form
        ):
            self._json(400, {"error": "invalid_grant"})
            return
        self._json(200, self._issue("key"))


@pytest.fixture
def google_standin() -> Iterator[str]:
    with serving(GoogleStandIn) as address:
        yield address


def service_account_key(token_uri: str) -> str:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "qc-operator@proj.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


def pubsub_consumer(name: str, endpoint: str, key_secret: str | None) -> dict[str, Any]:
    source: dict[str, Any] = {"project": "proj", "subscription": name, "monitoringEndpoint": endpoint}
    if key_secret:
        source["serviceAccountKeySecretRef"] = {"name": key_secret, "key": "key.json"}
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "source": {"pubsub": source},
            "worker": {"image": "example.com/w:1", "task": "m:f"},
            "scaling": {"pollingIntervalSeconds": 1, "messagesPerReplica": 1000, "maxReplicas": 3},
        },
    }


@pytest.mark.slow
def test_the_operator_reads_cloud_monitoring_with_refreshed_adc_and_key_credentials(
    kube: KubeControlPlane, admin: client.ApiClient, google_standin: str, tmp_path: Path
) -> None:
    namespace = new_namespace(admin, "google")
    endpoint = f"http://{google_standin}"
    create_secret(admin, namespace, "gcp-key", {"key.json": service_account_key(f"{endpoint}/token")})
    env = {
        **os.environ,
        "KUBECONFIG": str(kube.admin_kubeconfig),
        "QC_METRICS_PORT": str(free_port()),
        # Application Default Credentials find the (stand-in) metadata server here, as on GKE.
        "GCE_METADATA_HOST": google_standin,
        "GCE_METADATA_IP": google_standin,
        "NO_GCE_CHECK": "false",
        "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),  # no gcloud user credentials on this machine
    }
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    command = [
        str(Path(sys.executable).with_name("qc-operator")),
        "run",
        "-n",
        namespace,
        "--liveness",
        liveness,
    ]
    operator = ManagedProcess("qc-operator", command, tmp_path / "operator.log", env)
    operator.start()
    try:
        create(admin, namespace, pubsub_consumer("adc", endpoint, None))
        create(admin, namespace, pubsub_consumer("key", endpoint, "gcp-key"))

        def reading(name: str) -> bool:
            return (get_qc(admin, namespace, name).get("status") or {}).get("backlog") == UNDELIVERED

        wait_until(lambda: reading("adc") and reading("key"), 60, "both backlogs read")
        started = time.monotonic()
        while time.monotonic() - started < 15:  # three token lifetimes as google-auth counts them
            for name in ("adc", "key"):
                error = condition(get_qc(admin, namespace, name), "SourceError")
                assert error is not None
                assert error["status"] == "False", f"{name}: {error['message']}"
            time.sleep(1)
    finally:
        operator.stop()
    log = (tmp_path / "operator.log").read_text()
    issued = set(GoogleStandIn.issued)
    assert len([t for t in issued if t.startswith("metadata-")]) >= 2, "the metadata token was refreshed"
    assert len([t for t in issued if t.startswith("key-")]) >= 2, "the key's token was refreshed"
    assert {t.split("-")[0] for t in GoogleStandIn.served} == {"metadata", "key"}
    assert GoogleStandIn.refused == [], "an expired or unknown token was sent"
    for token in issued:
        assert token not in log, "a token was logged"
    assert "PRIVATE KEY" not in log
