"""The kopf handlers: thin functions that check guards and delegate to `reconcile`.

Registered on import (kopf's default registry); `qc-operator run` and the tests' KopfRunner import this
module. One daemon per QueueConsumer runs the scaling loop at the spec's polling interval. Every failure
is classified here (`errors.ready_reason`): an expected one becomes Ready=False with its reason and one
Warning Event per change; an unexpected one is logged and counted, and the loop goes on.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import aiohttp
import kopf

from qc_common import api
from qc_operator import errors, status
from qc_operator import spec as spec_module
from qc_operator.kube import Kube, make_api_client
from qc_operator.metrics import OperatorMetrics, serve
from qc_operator.reconcile import Autoscaler, ensure_children
from qc_operator.settings import OperatorSettings

RESOURCE = (api.GROUP, api.VERSION, api.PLURAL)
Logger = logging.Logger | logging.LoggerAdapter[Any]
ANNOTATION_PREFIX = api.GROUP
FIRST_TICK_INTERVAL_SECONDS = 5.0  # before the spec could be parsed for its own polling interval


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
    return kopf.login_with_service_account(**kwargs)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.session.close()
    await memo.metrics_server.cleanup()


async def report_not_ready(memo: kopf.Memo, body: kopf.Body, reason: str, message: str) -> None:
    """Bad input or a missing piece: Ready=False and a Warning Event, once per change; no scaling."""
    previous = status.ConsumerStatus.from_dict(body.get("status"))
    before = [c for c in previous.conditions if c.type == "Ready"]
    wanted = status.merge_conditions(
        before, [status.Condition("Ready", False, reason, message)], status.now_rfc3339()
    )
    if list(wanted) != before:
        others = [c.to_dict() for c in previous.conditions if c.type != "Ready"]
        meta = body["metadata"]
        conditions = [c.to_dict() for c in wanted] + others
        await memo.kube.patch_status(meta["namespace"], meta["name"], {"conditions": conditions})
        kopf.warn(body, reason=reason, message=message)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def reconcile_children(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    plain = copy.deepcopy(dict(body))
    try:
        await ensure_children(memo.kube, plain, spec_module.parse(plain["spec"]))
    except Exception as error:
        reason = errors.ready_reason(error)
        if reason is None:
            raise  # kopf retries unexpected failures with its backoff
        await report_not_ready(memo, body, reason, str(error))


@kopf.daemon(*RESOURCE, cancellation_timeout=10)
async def scale(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Logger, **_: Any
) -> None:
    autoscaler = Autoscaler(memo.kube, memo.session, memo.metrics)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    while not stopped:
        interval = FIRST_TICK_INTERVAL_SECONDS
        plain = copy.deepcopy(dict(body))
        try:
            parsed = spec_module.parse(plain["spec"])
            interval = parsed.polling_interval_seconds
            for event in await autoscaler.tick(plain, parsed):
                kopf.event(body, type=event.type, reason=event.reason, message=event.message)
            memo.metrics.reconciled(namespace, name, "ok")
        except Exception as error:  # never the end of the loop
            reason = errors.ready_reason(error)
            if reason is not None:
                memo.metrics.reconciled(namespace, name, "invalid")
                await report_not_ready(memo, body, reason, str(error))
            else:  # an API hiccup: logged, counted, retried next tick
                memo.metrics.reconciled(namespace, name, "error")
                logger.exception("scaling tick failed")
        await stopped.wait(interval)


@kopf.on.delete(*RESOURCE, optional=True)
async def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # No finalizer (optional=True): deletion never waits for the operator; children go by ownerReferences.
    memo.metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])
