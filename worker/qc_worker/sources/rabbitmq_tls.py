"""The TLS files of an amqps:// connection, as `qc_worker.sources.rabbitmq` turns them into a context.

Built by `qc_worker.__main__` from the settings (it imports it through `sources.rabbitmq`); the context is
made by `qc_common.tls`, shared with the operator's own connections.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from qc_common import tls as common_tls


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for amqps:// ("": not given): the CA, the client certificate and key; the server name."""

    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    server_name: str = ""

    def context(self) -> ssl.SSLContext:
        return common_tls.client_context(
            ca_file=self.ca_file or None,
            cert_file=self.client_cert_file or None,
            key_file=self.client_key_file or None,
            server_name=self.server_name or None,
        )
