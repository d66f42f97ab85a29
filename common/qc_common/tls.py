"""TLS to RabbitMQ as both sides do it: one client context, and one reading of a failed handshake.

The operator (its `https://` management reads, `qc_operator.http`) and the workers (`amqps://`,
`qc_worker.sources.rabbitmq`) build their context here, so a CA, a client certificate and a server name
mean the same on both sides, and a failure reads the same in a status condition and in a worker's log.
A CA, certificate or key that does not load (not PEM, a key of another certificate, a file that cannot
be read) is a `TlsMaterialError` saying which and why: a ValueError, as the operator's `http.ssl_for`
turns it into a SourceError, and the worker's `__main__` into a one-line exit.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

# Above the handshakes' own: a peer that never answers the handshake fails within the caller's timeout.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsMaterialError(ValueError):
    """A CA, client certificate or key that cannot be loaded; the message names it (never its content)."""


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
        _load("the CA", lambda: context.load_verify_locations(cafile=ca_file, cadata=ca_pem))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file:
        chain = cert_file, key_file
        _load(
            "the client certificate and key", lambda: context.load_cert_chain(*chain, password=_no_password)
        )
    return context


def _no_password() -> str:
    # Without a callback OpenSSL would ask for the passphrase on the terminal: a pod has none to answer.
    raise TlsMaterialError(
        "the client key is encrypted: give it unencrypted (the Secret is what protects it)"
    )


def _load(what: str, load: Callable[[], None]) -> None:
    """Run `load`; what the ssl module raises for bad material becomes a TlsMaterialError naming `what`."""
    try:
        load()
    except TlsMaterialError:
        raise
    except ssl.SSLError as error:
        raise TlsMaterialError(f"{what}: {_ssl_reason(error)}") from error
    except OSError as error:  # missing, a directory, no permission
        raise TlsMaterialError(f"{what}: cannot be read: {error.strerror or error}") from error
    except (ValueError, TypeError) as error:  # empty, or text that is not ASCII (DER bytes read as text)
        raise TlsMaterialError(f"{what}: not PEM ({error})") from error


def _ssl_reason(error: ssl.SSLError) -> str:
    reason = str(error.reason or "")
    if reason == "KEY_VALUES_MISMATCH":
        return "the key does not belong to the certificate (KEY_VALUES_MISMATCH)"
    if reason == "NO_CERTIFICATE_OR_CRL_FOUND" or "no start line" in str(error):
        return "no PEM certificate found (DER, or not a certificate?)"
    if "PEM lib" in str(error):
        return "not a PEM certificate and its PEM private key (DER, or the files swapped?)"
    return f"cannot be loaded: {reason or error}"


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
