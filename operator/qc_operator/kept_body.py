"""What kopf keeps of each QueueConsumer, made smaller in place: pure, used by `handlers.compact_kept_body`.

kopf keeps the latest body of every QueueConsumer for its daemon (the daemon's `body` is a live view of the
watch event's object): at 5,000 QueueConsumers that is most of the operator's live heap. Measured on a
QueueConsumer with a status, as Python objects: 29 KiB, of which `metadata.managedFields` (read by nothing
here) 14; of the remaining 15, the keys and short strings that every QueueConsumer repeats (field names,
condition types and reasons, messages, defaults) 7.7. Without managedFields and with those strings shared
(interned), 7.4 KiB are left. Equal values, equal structure: only the object the cluster sent is changed, in
this process's memory.
"""

from __future__ import annotations

import sys
from typing import Any

SHARED_STRING_MAX_CHARS = 64  # longer strings are mostly one QueueConsumer's own (its kopf diff-base)
MAX_DEPTH = 64  # what is nested deeper (free-form fields of a pod template) is left as it came


def compact(raw: Any) -> None:
    """Drop `metadata.managedFields` from a watched object and share its keys and short strings, in place.
    Anything that is not a mapping (an ERROR event's status, garbage) is left alone."""
    if not isinstance(raw, dict):
        return
    metadata = raw.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    _share(raw, MAX_DEPTH)


def _share(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= SHARED_STRING_MAX_CHARS else value
    if depth <= 0:
        return value
    if isinstance(value, dict):
        items = [(_share(key, depth), _share(item, depth - 1)) for key, item in value.items()]
        value.clear()  # rebuilt in place, in the same order (and without the spare room a JSON parse left)
        value.update(items)
    elif isinstance(value, list):
        value[:] = [_share(item, depth - 1) for item in value]
    return value
