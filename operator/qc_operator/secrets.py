"""The Secrets QueueConsumers name, read once per expiry and shared by every QueueConsumer naming them.

Invoked from `kube.Kube.secret_values` (the reconcile's early check and every tick's backlog read). The
chart's RBAC lets the operator `get` a Secret it is told the name of, never list or watch Secrets (a watch
would hand it every Secret of the namespace), so a value is kept for an expiry instead: the caller's
polling interval. A rotated Secret is then used within one interval, and a steady state makes one read per
Secret per interval however many QueueConsumers name it (500 consumers on one Secret at 15 s: 4 reads a
minute, not 2,000). Ticks asking at once share one read. A missing Secret is remembered for the expiry
too, so a typo is not read again by every tick of every consumer that makes it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from qc_operator.errors import SecretError
from qc_operator.sources.base import SecretKeyRef

DEFAULT_MAX_AGE_SECONDS = 10.0  # for callers without a polling interval (the create handler's check)
FORGET_AFTER_SECONDS = 3600.0  # a Secret nobody asked for in this long is dropped (its consumer went away)

# (namespace, name) -> the Secret's data as the API gives it (key -> base64), or None when it is missing.
ReadSecret = Callable[[str, str], Awaitable[Mapping[str, str] | None]]


@dataclass(frozen=True)
class _Entry:
    data: Mapping[str, str] | None
    read_at_seconds: float  # on `clock`


class SecretCache:
    """Secret values by (namespace, name), each read again once older than the caller's `max_age_seconds`."""

    def __init__(self, read: ReadSecret, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock  # a parameter for tests: a clock they move by hand
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.reads = 0  # API reads made, for tests and the benchmark

    async def _data(self, namespace: str, name: str, max_age_seconds: float) -> Mapping[str, str] | None:
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # a second tick asking meanwhile waits for this read instead of making its own
            entry = self._entries.get(key)
            now = self._clock()
            if entry is None or now - entry.read_at_seconds >= max_age_seconds:
                self.reads += 1
                entry = _Entry(await self._read(namespace, name), self._clock())
                self._entries[key] = entry
                self._forget_old(now)
            return entry.data

    def _forget_old(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.read_at_seconds > FORGET_AFTER_SECONDS]:
            del self._entries[key]
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]

    async def value(
        self, namespace: str, ref: SecretKeyRef, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    ) -> str:
        """The key's value as text; SecretError when the Secret, or the key, is missing or not text."""
        data = await self._data(namespace, ref.name, max_age_seconds)
        if data is None:
            raise SecretError(f"Secret {ref.name!r} not found in namespace {namespace!r}")
        if ref.key not in data:
            raise SecretError(f"Secret {ref.name!r} has no key {ref.key!r}")
        try:
            return base64.b64decode(data[ref.key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise SecretError(f"Secret {ref.name!r} key {ref.key!r} is not UTF-8 text") from error
