"""The Secret cache on plain data: one read per Secret per expiry however many QueueConsumers ask, a
rotated value seen once the expiry has passed, a missing Secret remembered for the expiry too. The clock
is moved by hand; the reader is a table the test changes, as a rotation changes the Secret."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping

import pytest

from qc_operator.errors import SecretError
from qc_operator.secrets import SecretCache
from qc_operator.sources.base import SecretKeyRef

PASSWORD = SecretKeyRef("rabbitmq", "managementUrl")


class Secrets:
    """The namespace's Secrets as the API would give them (values in base64), counting the reads."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, str]] = {}
        self.reads = 0
        self.now_seconds = 0.0

    def put(self, name: str, **values: str) -> None:
        self.data[("ns", name)] = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}

    async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads += 1
        await asyncio.sleep(0)  # an API call yields: the other askers arrive meanwhile
        return self.data.get((namespace, name))

    def cache(self) -> SecretCache:
        return SecretCache(self.read, clock=lambda: self.now_seconds)


def test_many_consumers_ticking_at_once_make_one_read() -> None:
    secrets = Secrets()
    secrets.put("rabbitmq", managementUrl="http://u:one@h")
    cache = secrets.cache()

    async def ticks() -> list[str]:
        return await asyncio.gather(*(cache.value("ns", PASSWORD, 15) for _ in range(500)))

    assert set(asyncio.run(ticks())) == {"http://u:one@h"}
    assert secrets.reads == 1 == cache.reads


def test_a_rotation_is_seen_once_the_expiry_has_passed_and_not_read_before() -> None:
    secrets = Secrets()
    secrets.put("rabbitmq", managementUrl="http://u:one@h")
    cache = secrets.cache()
    assert asyncio.run(cache.value("ns", PASSWORD, 15)) == "http://u:one@h"
    secrets.put("rabbitmq", managementUrl="http://u:two@h")
    secrets.now_seconds = 14.9
    assert asyncio.run(cache.value("ns", PASSWORD, 15)) == "http://u:one@h"
    assert secrets.reads == 1
    secrets.now_seconds = 15.0
    assert asyncio.run(cache.value("ns", PASSWORD, 15)) == "http://u:two@h"
    assert secrets.reads == 2


def test_the_shortest_interval_asking_decides_when_a_shared_secret_is_read_again() -> None:
    secrets = Secrets()
    secrets.put("rabbitmq", managementUrl="x")
    cache = secrets.cache()
    asyncio.run(cache.value("ns", PASSWORD, 60))
    secrets.now_seconds = 5.0
    asyncio.run(cache.value("ns", PASSWORD, 60))
    assert secrets.reads == 1
    asyncio.run(cache.value("ns", PASSWORD, 5))  # a consumer polling every 5 s
    assert secrets.reads == 2


def test_a_missing_secret_is_remembered_for_the_expiry_then_found_once_created() -> None:
    secrets = Secrets()
    cache = secrets.cache()
    for _ in range(3):
        with pytest.raises(SecretError, match="'rabbitmq' not found in namespace 'ns'"):
            asyncio.run(cache.value("ns", PASSWORD, 10))
    assert secrets.reads == 1
    secrets.put("rabbitmq", managementUrl="x")
    secrets.now_seconds = 10.0
    assert asyncio.run(cache.value("ns", PASSWORD, 10)) == "x"


def test_a_missing_key_or_a_value_that_is_not_text_is_a_secret_error() -> None:
    secrets = Secrets()
    secrets.put("rabbitmq", other="x")
    secrets.data[("ns", "binary")] = {"managementUrl": base64.b64encode(b"\xff\xfe").decode()}
    cache = secrets.cache()
    with pytest.raises(SecretError, match="has no key 'managementUrl'"):
        asyncio.run(cache.value("ns", PASSWORD, 10))
    with pytest.raises(SecretError, match="is not UTF-8 text"):
        asyncio.run(cache.value("ns", SecretKeyRef("binary", "managementUrl"), 10))


def test_secrets_of_the_same_name_in_two_namespaces_are_kept_apart() -> None:
    secrets = Secrets()
    secrets.put("rabbitmq", managementUrl="mine")
    secrets.data[("theirs", "rabbitmq")] = {"managementUrl": base64.b64encode(b"theirs").decode()}
    cache = secrets.cache()
    assert asyncio.run(cache.value("ns", PASSWORD, 10)) == "mine"
    assert asyncio.run(cache.value("theirs", PASSWORD, 10)) == "theirs"
