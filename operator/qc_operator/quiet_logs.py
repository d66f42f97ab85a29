"""The operator's log without kopf's per-event success lines of its watch handlers.

kopf logs "Handler 'name' succeeded." at INFO each time an `@kopf.on.event` handler returns: one line per
QueueConsumer and per child at every start (4,000 lines for 1,000 QueueConsumers before this filter,
measured), and one per status write after. Those of `handlers.compact_kept_body` and
`handlers.recreate_deleted_child` say nothing an operator's user needs; what they log themselves, and any
failure, still shows. Installed by `handlers.start` on kopf's per-object logger.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

KOPF_OBJECTS_LOGGER = "kopf.objects"


class QuietEventHandlers(logging.Filter):
    """Drops the INFO "Handler '<name>' succeeded." records of the named handlers; lets the rest pass."""

    def __init__(self, handler_names: Iterable[str]) -> None:
        super().__init__()
        names = "|".join(re.escape(name) for name in handler_names)
        # kopf names a handler registered several times by its function, with a suffix per registration.
        self._success = re.compile(rf"Handler '(?:{names})(?:/[^']*)?' succeeded\.")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        return self._success.fullmatch(record.getMessage()) is None


def install(handler_names: Iterable[str]) -> QuietEventHandlers:
    """Puts the filter on kopf's per-object logger (where its handlers' outcomes are logged), in place of
    one installed before (an operator started again in one process: the tests)."""
    logger = logging.getLogger(KOPF_OBJECTS_LOGGER)
    for installed in [f for f in logger.filters if isinstance(f, QuietEventHandlers)]:
        logger.removeFilter(installed)
    quiet = QuietEventHandlers(handler_names)
    logger.addFilter(quiet)
    return quiet
