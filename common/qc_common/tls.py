"""TLS to RabbitMQ as both sides do it: one client context, and one reading of a failed handshake.

The operator (its `https://` management reads, `qc_operator.http`) and the workers (`amqps://`,
`qc_worker.sources.rabbitmq`) build their context here, so a CA, a client certificate and a server name
mean the same on both sides, and a failure reads the same in a status condition and in a worker's log.
"""

from __future__ import annotations

import ssl

# Above the handshakes' own: a peer that never answers the handshake fails within the caller's timeout.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class _NamedServerContext(ssl.SSLContext):
    """Checks the server's certificate against `server_name` instead of the host dialled (an address, or a
    Service name the certificate does not carry); asyncio asks the context for every connection."""

    server_name: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)


def client_context(
    ca_pem: str | None = None,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    server_name: str | None = None,
) -> ssl.SSLContext:
    """A verifying client context: the CA given (else the system's), the client certificate if given, the
    server's name checked (against `server_name` when given, else the host dialled)."""
    context: ssl.SSLContext = (
        _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
        if server_name
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    )
    if isinstance(context, _NamedServerContext) and server_name:
        context.server_name = server_name
    context.minimum_version = MINIMUM_VERSION
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_pem or ca_file:
        context.load_verify_locations(cafile=ca_file, cadata=ca_pem)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def describe_failure(error: BaseException, client_certificate_given: bool = True) -> str | None:
    """What went wrong in a TLS connection, in words a user can act on; None if `error` is not TLS's.

    Looks through the causes and contexts: aiohttp and aiormq wrap the ssl module's errors in their own.
    With TLS 1.3 a server that wants a client certificate checks it after the client's side of the
    handshake is done, so the client may see its alert or only a reset: with no client certificate given,
    a reset is read as that."""
    seen: set[int] = set()
    current: BaseException | None = error
    reset = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _describe_one(current)
        if found:
            return found
        reset = (
            reset or isinstance(current, ConnectionResetError) or "connection reset" in str(current).lower()
        )
        current = current.__cause__ or current.__context__
    if reset and not client_certificate_given:
        return (
            "TLS handshake refused by the server: the connection was reset after the handshake, and no "
            "client certificate is given (it wants one?)"
        )
    return None


def _describe_one(error: BaseException) -> str | None:
    if isinstance(error, ssl.SSLCertVerificationError):
        # aiohttp's ClientConnectorCertificateError is one too, holding the ssl module's in an attribute.
        inner = getattr(error, "certificate_error", error)
        detail = str(getattr(inner, "verify_message", None) or getattr(inner, "reason", None) or inner)
        if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
            return f"TLS hostname mismatch: {detail} (set tls.serverName to a name the certificate carries)"
        return f"TLS certificate verify failed: {detail} (is tls.caSecretRef the CA that signed the server?)"
    if isinstance(error, ssl.SSLError):
        detail = str(error.reason or error)
        if "CERTIFICATE_REQUIRED" in detail.upper() or "HANDSHAKE_FAILURE" in detail.upper():
            return f"TLS handshake refused by the server: {detail} (it wants a client certificate?)"
        return f"TLS handshake failed: {detail}"
    return None
