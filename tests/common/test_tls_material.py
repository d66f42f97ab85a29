"""A CA, client certificate or key that does not load (`qc_common.tls.client_context`): a garbage CA, a CA
in DER, a key of another certificate, a file that cannot be read, an encrypted key. Each is a
`TlsMaterialError` naming which part and why, which the operator's `http.ssl_for` turns into a SourceError
(its condition and Event) and `qc-worker` into a one-line exit: certificates made with openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.certificates import make_ca, sign
from qc_common import tls, worker_env
from qc_operator.errors import SourceError
from qc_operator.http import ssl_for
from qc_operator.sources.base import ClientTls
from qc_worker.sources.rabbitmq import TlsFiles
from tests.worker.worker_harness import run_to_exit


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("tls-material")
    ca = make_ca(directory, "ca")
    client = sign(directory, "client", ca, "clientAuth")
    other = sign(directory, "other", ca, "clientAuth")
    der, encrypted, garbage = directory / "ca.der", directory / "encrypted.key", directory / "garbage.pem"
    subprocess.run(["openssl", "x509", "-in", ca[0], "-outform", "DER", "-out", der], check=True)
    subprocess.run(
        ["openssl", "rsa", "-in", client[1], "-aes256", "-passout", "pass:secret", "-out", encrypted],
        check=True,
        capture_output=True,
    )
    garbage.write_text("this is not a certificate\n")
    return {
        "ca": ca[0],
        "cert": client[0],
        "key": client[1],
        "other_key": other[1],
        "der": der,
        "encrypted_key": encrypted,
        "garbage": garbage,
        "missing": directory / "missing.pem",
        "directory": directory,
    }


CASES = [
    # (case, client_context's arguments as names in `material`, the error's words)
    ("garbage CA file", {"ca_file": "garbage"}, "the CA: no PEM certificate found"),
    ("CA in DER", {"ca_file": "der"}, "the CA: no PEM certificate found (DER"),
    ("missing CA file", {"ca_file": "missing"}, "the CA: cannot be read: No such file or directory"),
    ("CA path is a directory", {"ca_file": "directory"}, "the CA: cannot be read: Is a directory"),
    (
        "key of another certificate",
        {"ca_file": "ca", "cert_file": "cert", "key_file": "other_key"},
        "the client certificate and key: the key does not belong to the certificate",
    ),
    (
        "client certificate in DER",
        {"cert_file": "der", "key_file": "key"},
        "the client certificate and key: not a PEM certificate",
    ),
    (
        "unreadable client key",
        {"cert_file": "cert", "key_file": "missing"},
        "the client certificate and key: cannot be read",
    ),
    (
        "encrypted client key",
        {"cert_file": "cert", "key_file": "encrypted_key"},
        "the client key is encrypted",
    ),
]


@pytest.mark.parametrize(("case", "files", "expected"), CASES, ids=[case for case, _, _ in CASES])
def test_material_that_does_not_load_is_a_tls_material_error_naming_the_part(
    material: dict[str, Path], case: str, files: dict[str, str], expected: str
) -> None:
    arguments = {name: str(material[key]) for name, key in files.items()}
    with pytest.raises(tls.TlsMaterialError) as raised:
        tls.client_context(**arguments)
    assert expected in str(raised.value)
    assert isinstance(raised.value, ValueError)  # what the operator's ssl_for already classifies


def test_good_material_loads(material: dict[str, Path]) -> None:
    context = tls.client_context(
        ca_file=str(material["ca"]), cert_file=str(material["cert"]), key_file=str(material["key"])
    )
    assert context.verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage CA", "the CA: no PEM certificate found"),
        ("CA in DER, read as text", "the CA: not PEM"),
        ("key of another certificate", "the key does not belong to the certificate"),
        ("client certificate in DER, read as text", "the client certificate and key"),
    ],
)
def test_the_operator_reads_unusable_secret_material_as_a_source_error(
    material: dict[str, Path], case: str, expected: str
) -> None:
    ca, cert, key = (material[k].read_text() for k in ("ca", "cert", "key"))
    der_text = (
        material["der"].read_bytes().decode("utf-8", "replace")
    )  # a Secret's bytes as the operator reads them
    given = {
        "garbage CA": ClientTls(ca_pem="garbage"),
        "CA in DER, read as text": ClientTls(ca_pem=der_text),
        "key of another certificate": ClientTls(ca, cert, material["other_key"].read_text()),
        "client certificate in DER, read as text": ClientTls(ca, der_text, key),
    }[case]
    with pytest.raises(SourceError) as raised:
        ssl_for(given, "RabbitMQ queue q")
    assert str(raised.value).startswith("RabbitMQ queue q: the TLS CA or client certificate from the Secret")
    assert expected in str(raised.value)


def test_the_worker_sees_the_same_error_from_its_files(material: dict[str, Path]) -> None:
    with pytest.raises(tls.TlsMaterialError, match="the CA: no PEM certificate found"):
        TlsFiles(ca_file=str(material["garbage"])).context()


def test_a_worker_whose_tls_files_do_not_load_exits_with_one_clear_line(
    material: dict[str, Path], tmp_path: Path
) -> None:
    env = {
        worker_env.SOURCE: "rabbitmq",
        worker_env.RABBITMQ_URL: "amqps://guest:guest@127.0.0.1:1/",  # never dialled: the files fail first
        worker_env.RABBITMQ_QUEUE: "q",
        worker_env.RABBITMQ_CA_FILE: str(material["garbage"]),
        worker_env.TASK: "worker_tasks:work",
    }
    code, output = run_to_exit(env, tmp_path / "worker.log", 60)
    assert code == 2, output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "TLS" in line]
    assert f"the CA file {material['garbage']}" in line
    assert "no PEM certificate found" in line
    assert "cannot reach the broker" not in output
