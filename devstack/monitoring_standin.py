"""A stand-in for the Cloud Monitoring API's timeSeries.list, for the demo's Pub/Sub consumer.

The Pub/Sub emulator has no monitoring API, so the demo serves the two metrics the operator reads
(num_undelivered_messages, oldest_unacked_message_age) from its own ledger: published minus processed,
and the age of the oldest message not yet processed. The operator's real Pub/Sub source talks to it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"


class MonitoringStandIn:
    """`backlog(subscription)` -> (undelivered messages, oldest age in seconds), served on 127.0.0.1:port."""

    def __init__(self, port: int, backlog: Callable[[str], tuple[int, float]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                text = query.get("filter", [""])[0]
                metric, subscription = text.split('"')[1], text.rsplit('"', 2)[1]
                undelivered, oldest = backlog(subscription)
                value = undelivered if metric == UNDELIVERED else int(oldest)
                end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                body = {
                    "timeSeries": [
                        {"points": [{"interval": {"endTime": end}, "value": {"int64Value": str(value)}}]}
                    ]
                }
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="monitoring-stand-in", daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
