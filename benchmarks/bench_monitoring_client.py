"""`python -m benchmarks.bench_monitoring_client`: the cost of one Pub/Sub backlog read from Cloud Monitoring
(timeSeries.list, twice: undelivered messages and the oldest message's age) two ways, against the local
stand-in of the Monitoring API (`devstack.monitoring_standin`; no Google endpoint can be reached here):

- ours: `qc_operator.sources.pubsub.PubSubBacklog` over the operator's `JsonFetcher` (one aiohttp session,
  on the event loop), with a google-auth token;
- Google's client: google-cloud-monitoring's `MetricServiceAsyncClient` (gRPC, asyncio: the only transports
  it ships), against a gRPC stand-in of MetricService.ListTimeSeries answering the same series.

Both stand-ins run in a child process, so the CPU measured is the client's alone. Both send a bearer
token that stays valid for the run (a google-auth `Credentials`), so neither refreshes: the steady state
(one refresh an hour). Printed: CPU and wall time per read, sequential and with `--concurrency` reads in
flight (many QueueConsumers ticking at once), and what importing each costs in memory. Compare ratios,
not absolute figures: 2 shared cores. google-cloud-monitoring is not a dependency of the project:
`pip install -c constraints.txt google-cloud-monitoring` first (it needs nothing the project lacks).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import json
import subprocess
import sys
import time
from concurrent import futures
from typing import Any

import aiohttp
import google.oauth2.credentials

from devstack.monitoring_standin import UNDELIVERED, MonitoringStandIn
from devstack.process import free_port
from qc_operator.http import JsonFetcher
from qc_operator.sources.base import GoogleAuth
from qc_operator.sources.pubsub import LOOKBACK_SECONDS, OLDEST_AGE, PubSubBacklog

PROJECT, SUBSCRIPTION, BACKLOG = "bench", "orders", 1234
TOKEN = "bench-token"
METHOD = "/google.monitoring.v3.MetricService/ListTimeSeries"


def monitoring_v3() -> Any:
    """google.cloud.monitoring_v3, imported when used: an optional package, not the project's."""
    return importlib.import_module("google.cloud.monitoring_v3")


def credentials() -> google.oauth2.credentials.Credentials:
    expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1)
    return google.oauth2.credentials.Credentials(token=TOKEN, expiry=expiry)  # type: ignore[no-untyped-call]


class Tokens:
    """`GoogleTokenSource` at its steady state: a valid google-auth Credentials, its token handed out."""

    def __init__(self) -> None:
        self.credentials = credentials()

    async def __call__(self, service_account_key_json: str | None) -> str:
        assert self.credentials.valid
        return str(self.credentials.token)


def serve() -> None:
    """The child: the JSON stand-in and a gRPC stand-in of ListTimeSeries; prints their ports, runs until
    its stdin closes."""
    grpc = importlib.import_module("grpc")
    types = monitoring_v3()
    json_standin = MonitoringStandIn(free_port(), lambda subscription: (BACKLOG, 5.0))
    json_standin.start()

    def list_time_series(request: Any, context: Any) -> Any:
        point = {"interval": {"end_time": {"seconds": int(time.time())}}, "value": {"int64_value": BACKLOG}}
        return types.ListTimeSeriesResponse(time_series=[{"points": [point]}])

    handler = grpc.method_handlers_generic_handler(
        "google.monitoring.v3.MetricService",
        {
            "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                list_time_series,
                request_deserializer=types.ListTimeSeriesRequest.deserialize,
                response_serializer=types.ListTimeSeriesResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"json": json_standin.endpoint, "grpc": f"127.0.0.1:{grpc_port}"}), flush=True)
    sys.stdin.read()
    server.stop(0)
    json_standin.stop()


def google_client(address: str) -> Any:
    grpc_aio = importlib.import_module("grpc.aio")
    transports = importlib.import_module("google.cloud.monitoring_v3.services.metric_service.transports")
    channel = grpc_aio.insecure_channel(address)
    transport = transports.MetricServiceGrpcAsyncIOTransport(channel=channel)
    return monitoring_v3().MetricServiceAsyncClient(transport=transport)


async def google_read(monitoring: Any, tokens: Tokens) -> float:
    """Both metrics through the client, as `PubSubBacklog.read` reads them; returns the backlog."""
    now = time.time()
    interval = {"start_time": {"seconds": int(now - LOOKBACK_SECONDS)}, "end_time": {"seconds": int(now)}}
    # A channel made by hand carries no call credentials: the token goes in the metadata, as they would.
    metadata = [("authorization", f"Bearer {await tokens(None)}")]
    values = []
    for metric in (UNDELIVERED, OLDEST_AGE):
        pager = await monitoring.list_time_series(
            request={
                "name": f"projects/{PROJECT}",
                "filter": f'metric.type = "{metric}" AND resource.labels.subscription_id = "{SUBSCRIPTION}"',
                "interval": interval,
                "view": monitoring_v3().ListTimeSeriesRequest.TimeSeriesView.FULL,
            },
            metadata=metadata,
        )
        async for series in pager:
            values.append(float(series.points[0].value.int64_value))
            break
    return values[0]


async def measure(read: Any, reads: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per read, `concurrency` reads in flight."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            assert await read() == BACKLOG

    await one()  # warm: connections, the first request's set-up
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(reads)))
    return (time.process_time() - cpu) / reads, (time.perf_counter() - wall) / reads


def import_rss_mib(module: str, after: str = "sys") -> float:
    """RSS growth of a fresh interpreter importing `module` once `after` is imported (current RSS, as the
    peak survives exec)."""
    rss = "int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    code = f"import {after}; before = {rss}; import {module}; print(({rss} - before) / 1024)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out)


async def run(reads: int, concurrency: int) -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        [sys.executable, "-m", "benchmarks.bench_monitoring_client", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        addresses = json.loads(child.stdout.readline())
        tokens = Tokens()
        async with aiohttp.ClientSession() as session:
            fetch = JsonFetcher(session)
            ours = PubSubBacklog(PROJECT, SUBSCRIPTION, addresses["json"], GoogleAuth(), tokens)
            monitoring = google_client(addresses["grpc"])

            async def our_read() -> float:
                return (await ours.read(fetch)).messages

            async def their_read() -> float:
                return await google_read(monitoring, tokens)

            results = {}
            for name, read in (
                ("JsonFetcher + google-auth", our_read),
                ("google-cloud-monitoring", their_read),
            ):
                results[name] = [await measure(read, reads, n) for n in (1, concurrency)]
    finally:
        child.communicate(timeout=10)
    print(f"## One backlog read (2 x timeSeries.list) against local stand-ins, {reads} reads")
    columns = ("CPU ms/read", "wall ms/read", f"CPU ms @{concurrency}", f"wall ms @{concurrency}")
    print(f"{'client':28}" + "".join(f"{c:>15}" for c in columns))
    for name, ((cpu1, wall1), (cpun, walln)) in results.items():
        print(f"{name:28}" + "".join(f"{v * 1e3:15.2f}" for v in (cpu1, wall1, cpun, walln)))
    ours_cpu, theirs_cpu = (
        results["JsonFetcher + google-auth"][0][0],
        results["google-cloud-monitoring"][0][0],
    )
    print(f"CPU per read, google-cloud-monitoring / ours: {theirs_cpu / ours_cpu:.2f}x")
    extra_mib = import_rss_mib("google.cloud.monitoring_v3", after="qc_operator.handlers")
    print(f"RSS google.cloud.monitoring_v3 adds to the operator's imports: {extra_mib:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_monitoring_client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the stand-ins' child
    args = parser.parse_args(argv)
    if args.serve:
        serve()
    else:
        asyncio.run(run(args.reads, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
