"""The worker's HTTP endpoints: /metrics for Prometheus, /healthz (the loop is alive), /readyz (consuming)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def build_app(registry: CollectorRegistry, is_ready: Callable[[], bool]) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")  # answering at all proves the event loop is not stuck

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready") if is_ready() else web.Response(status=503, text="not ready")

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)])
    return app


async def start_server(app: web.Application, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
