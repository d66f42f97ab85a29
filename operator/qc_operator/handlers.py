"""The kopf handlers: thin functions that check guards and delegate to `reconcile`.

Registered on import (kopf's default registry); `qc-operator run` and the tests' KopfRunner import this
module. One daemon per QueueConsumer runs the scaling loop at the spec's polling interval.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from typing import Any

import aiohttp
import kopf

from qc_common import api
from qc_operator import spec as spec_module
from qc_operator import status
from qc_operator.kube import Kube, SecretError, make_api_client
from qc_operator.metrics import OperatorMetrics, serve
from qc_operator.reconcile import Scaler, ensure_children
from qc_operator.settings import OperatorSettings

RESOURCE = (api.GROUP, api.VERSION, api.PLURAL)
Logger = logging.Logger | logging.LoggerAdapter[Any]
ANNOTATION_PREFIX = api.GROUP


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
    # Progress and diff-base in annotations: the status belongs to the resource's users.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.posting.level = logging.WARNING  # our own Events say what happened; no event per log line
    settings.watching.server_timeout = 300
    own = OperatorSettings.from_environment()
    memo.settings = own
    memo.kube = Kube(make_api_client(own.kubeconfig))
    memo.session = aiohttp.ClientSession()
    memo.metrics = OperatorMetrics()
    memo.metrics_server = await serve(memo.metrics.registry, own.metrics_port)
    logger.info("metrics on :%d/metrics", own.metrics_port)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Read $KUBECONFIG now, not when the kubernetes client was imported; in a pod, the service account.
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    info = kopf.login_with_service_account(**kwargs)
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if info is not None and host and port:
        # kopf dials https://kubernetes.default.svc, which needs cluster DNS; like client-go's in-cluster
        # config (and our kube.py), use the address the kubelet puts in every pod's environment.
        host = f"[{host}]" if ":" in host else host
        info = dataclasses.replace(info, server=f"https://{host}:{port}")
    return info


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.session.close()
    await memo.metrics_server.cleanup()


async def report_invalid(memo: kopf.Memo, body: kopf.Body, reason: str, message: str) -> None:
    """Bad input the schema cannot catch: a condition and a Warning event, no scaling, no crash."""
    previous = dict(body.get("status") or {})
    wanted = [status.condition("Ready", False, reason, message)]
    conditions = status.merge_conditions(previous.get("conditions") or [], wanted, status.now_rfc3339())
    others = [c for c in previous.get("conditions") or [] if c.get("type") != "Ready"]
    if [c for c in previous.get("conditions") or [] if c.get("type") == "Ready"] != conditions:
        meta = body["metadata"]
        await memo.kube.patch_status(meta["namespace"], meta["name"], {"conditions": conditions + others})
        kopf.warn(body, reason=reason, message=message)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def reconcile_children(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    plain = copy.deepcopy(dict(body))
    try:
        parsed = spec_module.parse(plain["spec"])
        await ensure_children(memo.kube, plain, parsed)
    except spec_module.SpecError as error:
        await report_invalid(memo, body, "InvalidSpec", str(error))
    except SecretError as error:
        await report_invalid(memo, body, "SecretMissing", str(error))


@kopf.daemon(*RESOURCE, cancellation_timeout=10)
async def scale(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Logger, **_: Any
) -> None:
    scaler = Scaler(memo.kube, memo.session, memo.metrics)
    meta = body["metadata"]
    labels = {"namespace": meta["namespace"], "consumer": meta["name"]}
    while not stopped:
        interval = 5.0
        plain = copy.deepcopy(dict(body))
        try:
            parsed = spec_module.parse(plain["spec"])
            interval = parsed.polling_interval_seconds
            await scaler.tick(plain, parsed)
            memo.metrics.reconciles.labels(**labels, result="ok").inc()
        except spec_module.SpecError as error:
            memo.metrics.reconciles.labels(**labels, result="invalid").inc()
            await report_invalid(memo, body, "InvalidSpec", str(error))
        except SecretError as error:
            memo.metrics.reconciles.labels(**labels, result="invalid").inc()
            await report_invalid(memo, body, "SecretMissing", str(error))
        except Exception:  # an API hiccup: logged, counted, retried next tick — never the end of the loop
            memo.metrics.reconciles.labels(**labels, result="error").inc()
            logger.exception("scaling tick failed")
        for event_type, reason, message in scaler.events:
            kopf.event(body, type=event_type, reason=reason, message=message)
        scaler.events.clear()
        await stopped.wait(interval)


@kopf.on.delete(*RESOURCE, optional=True)
async def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # No finalizer (optional=True): deletion never waits for the operator; children go by ownerReferences.
    memo.metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])
