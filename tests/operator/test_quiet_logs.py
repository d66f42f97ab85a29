"""qc_operator.quiet_logs: kopf's success line of a named watch handler is dropped, nothing else."""

from __future__ import annotations

import logging

import pytest

from qc_operator import handlers, quiet_logs

NAMES = list(handlers.QUIET_WATCH_HANDLERS)


def test_the_quiet_handlers_are_the_operators_watch_handlers() -> None:
    assert all(callable(getattr(handlers, name, None)) for name in NAMES)


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(quiet_logs.KOPF_OBJECTS_LOGGER, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("message", "level", "passes"),
    [
        ("Handler 'compact_kept_body' succeeded.", logging.INFO, False),
        ("Handler 'recreate_deleted_child' succeeded.", logging.INFO, False),
        ("Handler 'recreate_deleted_child/services' succeeded.", logging.INFO, False),
        ("Handler 'reconcile_children' succeeded.", logging.INFO, True),  # not named: a real change
        ("Handler 'compact_kept_body' failed with an exception. Will ignore.", logging.ERROR, True),
        ("Handler 'compact_kept_body' succeeded.", logging.WARNING, True),  # only INFO is dropped
        ("Handler 'compact_kept_body' succeeded. And more", logging.INFO, True),
        ("Handler 'compact_kept_bodyX' succeeded.", logging.INFO, True),
    ],
)
def test_only_the_named_handlers_success_lines_are_dropped(message: str, level: int, passes: bool) -> None:
    assert quiet_logs.QuietEventHandlers(NAMES).filter(record(message, level)) is passes


def test_installing_again_replaces_the_filter() -> None:
    logger = logging.getLogger(quiet_logs.KOPF_OBJECTS_LOGGER)
    try:
        quiet_logs.install(NAMES)
        latest = quiet_logs.install(["other"])
        ours = [f for f in logger.filters if isinstance(f, quiet_logs.QuietEventHandlers)]
        assert ours == [latest]
        assert logger.filter(record("Handler 'compact_kept_body' succeeded."))
        assert not logger.filter(record("Handler 'other' succeeded."))
    finally:
        for installed in [f for f in logger.filters if isinstance(f, quiet_logs.QuietEventHandlers)]:
            logger.removeFilter(installed)
