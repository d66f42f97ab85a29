"""Certificates made with openssl for the stack's TLS listeners and their clients: a CA and the certificates
it signs — RabbitMQ's amqps:// and https:// management ports (a server certificate for 127.0.0.1 and
localhost, a client certificate), the apiserver's front-proxy client (`devstack.kube`) and KEDA's serving
certificate (`devstack.keda`). Keys are unencrypted PEM files in a directory only the stack uses."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 2
KEY_BITS = 2048
SERVER_NAMES = "subjectAltName=DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True)
class CertificateSet:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is not installed (Debian package openssl)")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str, days: int = VALID_DAYS) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        f"rsa:{KEY_BITS}",
        "-nodes",
        "-days",
        str(days),
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    return cert, key


def sign(
    directory: Path,
    name: str,
    ca: tuple[Path, Path],
    usage: str,
    names: str | None = None,
    *,
    common_name: str | None = None,
    days: int = VALID_DAYS,
) -> tuple[Path, Path]:
    """A certificate `<name>.crt` signed by `ca` (`usage`: serverAuth, clientAuth or both), its subject
    `common_name` (else `name`): (certificate, key)."""
    cert, key, request = directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"extendedKeyUsage={usage}\n" + (f"{names}\n" if names else ""))
    _openssl(
        "req",
        "-newkey",
        f"rsa:{KEY_BITS}",
        "-nodes",
        "-subj",
        f"/CN={common_name or name}",
        "-keyout",
        str(key),
        "-out",
        str(request),
        cwd=directory,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        str(days),
        "-extfile",
        str(extensions),
        "-out",
        str(cert),
        cwd=directory,
    )
    key.chmod(0o644)  # the broker runs as us, but reads it through Erlang's ssl, which wants it readable
    return cert, key


def make_certificates(directory: Path) -> CertificateSet:
    ca = make_ca(directory, "qc-test-ca")
    server = sign(directory, "rabbitmq-server", ca, "serverAuth", SERVER_NAMES)
    client = sign(directory, "qc-client", ca, "clientAuth")
    return CertificateSet(ca[0], ca[1], server[0], server[1], client[0], client[1])
