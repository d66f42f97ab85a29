"""A kubelet stand-in for the local stack: one real `qc-worker` process per worker pod the cluster asks for.

There is no container runtime here, so this plays the kubelet's part for the worker pods of
QueueConsumers: it binds each new pod to a local Node, starts a `qc-worker` process with the pod's
environment (values, Secret and ConfigMap references resolved as the kubelet would), reports the pod
Running and Ready at 127.0.0.1 with its metrics port in an annotation, restarts a process that dies
(restartPolicy Always), and on pod deletion sends SIGTERM, waits up to the pod's grace period, SIGKILLs
what is left and then removes the pod — the same contract a real kubelet gives the worker. A pod's
ConfigMap volumes are written into a directory of its own (env values naming the mount path point there)
and refreshed in place every `CONFIG_MAP_REFRESH_SECONDS`, as the kubelet's sync does.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.process import free_port
from qc_common import api, worker_env

POLL_INTERVAL_SECONDS = 0.3
CONFIG_MAP_REFRESH_SECONDS = 3.0  # a real kubelet takes up to its sync period (1 min) plus its cache TTL
NODE_NAME = "local-runner"
log = logging.getLogger("devstack.kubelet")


@dataclass
class WorkerProcess:
    pod: str
    namespace: str
    consumer: str
    popen: subprocess.Popen[bytes]
    metrics_port: int
    grace_seconds: float
    restarts: int = 0
    terminating_since: float | None = None


class LocalKubelet:
    """Runs worker pods of `namespace` as local processes; `kill_random()` SIGKILLs one (chaos tests)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        worker_argv: list[str],
        log_dir: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.worker_argv = worker_argv
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.workers: dict[str, WorkerProcess] = {}
        self.kills = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="local-kubelet", daemon=True)
        self._volumes_refreshed: dict[str, float] = {}  # pod -> when its ConfigMap volumes were written

    # --- lifecycle ---
    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_node()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for worker in self.workers.values():
                _signal(worker.popen, signal.SIGTERM)
            deadline = time.monotonic() + 30
            for worker in self.workers.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                _signal(worker.popen, signal.SIGKILL)
            self.workers.clear()

    def running(self) -> int:
        with self._lock:
            return sum(1 for w in self.workers.values() if w.terminating_since is None)

    def metrics_ports(self) -> dict[str, tuple[str, int]]:
        """pod -> (consumer, metrics port) of the workers running now."""
        with self._lock:
            return {
                name: (w.consumer, w.metrics_port)
                for name, w in self.workers.items()
                if w.popen.poll() is None
            }

    def running_for(self, consumer: str) -> int:
        with self._lock:
            return sum(
                1 for w in self.workers.values() if w.consumer == consumer and w.terminating_since is None
            )

    def kill_random(self, rng: random.Random) -> str | None:
        """SIGKILL one running worker (as if its node or container died); it will be restarted."""
        with self._lock:
            candidates = [
                w for w in self.workers.values() if w.terminating_since is None and w.popen.poll() is None
            ]
            if not candidates:
                return None
            victim = rng.choice(candidates)
            victim.popen.kill()
            self.kills += 1
            return victim.pod

    # --- the sync loop ---
    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_SECONDS):
            try:
                self._sync()
            except Exception:  # a failed round is retried on the next tick, as a kubelet would
                log.exception("local kubelet sync failed")

    def _sync(self) -> None:
        pods: list[Any] = self.core.list_namespaced_pod(
            self.namespace, label_selector=api.CONSUMER_LABEL
        ).items
        seen = set()
        for pod in pods:
            name = pod.metadata.name
            seen.add(name)
            if pod.spec.node_name is None:
                self._bind(name)
            elif pod.metadata.deletion_timestamp is not None:
                self._terminate(pod)
            else:
                self._ensure_running(pod)
        with self._lock:
            for name in list(self.workers):
                if name not in seen:  # force-deleted: nothing to wait for
                    _signal(self.workers.pop(name).popen, signal.SIGKILL)

    def _ensure_node(self) -> None:
        node = client.V1Node(
            metadata=client.V1ObjectMeta(name=NODE_NAME, labels={"kubernetes.io/hostname": NODE_NAME})
        )
        with contextlib.suppress(ApiException):
            self.core.create_node(node)

    def _bind(self, pod_name: str) -> None:
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod_name),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=NODE_NAME),
        )
        with contextlib.suppress(ApiException):
            # _preload_content=False: the client cannot parse the Status the binding call returns.
            self.core.create_namespaced_binding(self.namespace, binding, _preload_content=False)

    def _ensure_running(self, pod: Any) -> None:
        name = pod.metadata.name
        with self._lock:
            worker = self.workers.get(name)
            if worker is not None and worker.popen.poll() is None:
                if time.monotonic() - self._volumes_refreshed.get(name, 0.0) >= CONFIG_MAP_REFRESH_SECONDS:
                    self._config_map_volumes(pod)
                return
            restarts = 0 if worker is None else worker.restarts + 1
            port = free_port() if worker is None else worker.metrics_port
            env = self._environment(pod, port)
            log_file = (self.log_dir / f"{name}.log").open("ab")
            popen = subprocess.Popen(
                self.worker_argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
            log_file.close()
            grace = float(pod.spec.termination_grace_period_seconds or 30)
            consumer = (pod.metadata.labels or {}).get(api.CONSUMER_LABEL, "")
            self.workers[name] = WorkerProcess(name, self.namespace, consumer, popen, port, grace, restarts)
        self._report_running(name, port, restarts)

    def _report_running(self, name: str, port: int, restarts: int) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        self.core.patch_namespaced_pod(
            name, self.namespace, {"metadata": {"annotations": {api.METRICS_PORT_ANNOTATION: str(port)}}}
        )
        status = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": "worker",
                    "ready": True,
                    "restartCount": restarts,
                    "image": "local",
                    "imageID": "local",
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
            ],
        }
        self.core.patch_namespaced_pod_status(name, self.namespace, {"status": status})

    def _terminate(self, pod: Any) -> None:
        name = pod.metadata.name
        with self._lock:
            worker = self.workers.get(name)
            if worker is not None and worker.terminating_since is None:
                worker.terminating_since = time.monotonic()
                _signal(worker.popen, signal.SIGTERM)
            if worker is not None and worker.popen.poll() is None:
                if time.monotonic() - (worker.terminating_since or 0) < worker.grace_seconds:
                    return
                _signal(worker.popen, signal.SIGKILL)  # past the grace period, as the kubelet does
                worker.popen.wait(timeout=5)
            self.workers.pop(name, None)
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)

    def _config_map_volumes(self, pod: Any) -> dict[str, Path]:
        """Write the pod's ConfigMap volumes (each key a file, replaced whole so a reader sees a new inode,
        as the kubelet's ..data swap gives); returns mount path -> the local directory."""
        name = pod.metadata.name
        mounts = {m.name: m.mount_path for m in pod.spec.containers[0].volume_mounts or []}
        places = {}
        for volume in pod.spec.volumes or []:
            if volume.config_map is None or volume.name not in mounts:
                continue
            directory = self.log_dir / "volumes" / name / volume.name
            directory.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(ApiException):  # a missing one keeps what was written
                found = self.core.read_namespaced_config_map(volume.config_map.name, self.namespace)
                for key, value in (found.data or {}).items():
                    path = directory / key
                    if not path.exists() or path.read_text() != value:
                        staged = directory / f".{key}.new"
                        staged.write_text(value)
                        os.replace(staged, path)
            places[mounts[volume.name]] = directory
        self._volumes_refreshed[name] = time.monotonic()
        return places

    def _environment(self, pod: Any, metrics_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QC_")}
        container = pod.spec.containers[0]
        volumes = self._config_map_volumes(pod)
        for item in container.env or []:
            value = self._resolve(item, pod)
            for mount_path, directory in volumes.items():  # a file in a mounted ConfigMap: its local copy
                if value is not None and value.startswith(mount_path + "/"):
                    value = str(directory) + value[len(mount_path) :]
            if value is not None:
                env[item.name] = value
        env.update(self.extra_env)
        env[worker_env.METRICS_PORT] = str(metrics_port)
        return env

    def _resolve(self, item: Any, pod: Any) -> str | None:
        if item.value_from is None:
            return str(item.value) if item.value is not None else ""
        source = item.value_from
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            secret = self.core.read_namespaced_secret(ref.name, self.namespace)
            return base64.b64decode((secret.data or {})[ref.key]).decode()
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            return str((self.core.read_namespaced_config_map(ref.name, self.namespace).data or {})[ref.key])
        if source.field_ref is not None:
            path = source.field_ref.field_path
            fields = {
                "metadata.name": pod.metadata.name,
                "metadata.namespace": self.namespace,
                "status.podIP": "127.0.0.1",
                "spec.nodeName": NODE_NAME,
            }
            return str(fields.get(path, ""))
        return None


def _signal(popen: subprocess.Popen[bytes], signum: int) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signum)
