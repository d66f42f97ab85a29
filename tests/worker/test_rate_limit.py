"""The rate limit's arithmetic (`qc_worker.rate_limit`): the token bucket, the window, the share file."""

from __future__ import annotations

import itertools
import math

import pytest

from qc_worker import rate_limit
from qc_worker.rate_limit import TokenBucket


def starts(bucket: TokenBucket, count: int, start_seconds: float = 0.0) -> list[float]:
    """When `count` single-message tasks start if each waits exactly as long as `take` says."""
    now, times = start_seconds, []
    for _ in range(count):
        wait = bucket.take(1, now)
        while wait > 0:
            now += wait
            wait = bucket.take(1, now)
        times.append(now)
    return times


def test_an_unlimited_bucket_never_waits() -> None:
    bucket = TokenBucket(None)
    assert [bucket.take(1000, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.burst == math.inf


def test_a_bucket_starts_empty_and_spaces_starts_evenly_at_its_rate() -> None:
    bucket = TokenBucket(10.0)
    times = starts(bucket, 21)
    assert times[0] == pytest.approx(0.1)
    assert times[-1] == pytest.approx(2.1)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1] * 20)


def test_an_idle_bucket_saves_at_most_its_burst() -> None:
    bucket = TokenBucket(100.0)
    bucket.take(1, 0.0)
    assert bucket.burst == pytest.approx(10.0)  # a tenth of a second of the rate
    times = starts(bucket, 30, start_seconds=60.0)  # a minute idle saved 10 tokens, not 6,000
    assert sum(1 for t in times if t == 60.0) == 10
    assert times[-1] == pytest.approx(60.2)


def test_a_slow_rate_still_holds_one_token() -> None:
    bucket = TokenBucket(0.5)
    assert bucket.burst == 1.0
    assert bucket.take(1, 0.0) == pytest.approx(2.0)
    assert bucket.take(1, 2.0) == 0.0
    assert bucket.take(1, 2.0) == pytest.approx(2.0)


def test_any_window_holds_the_rate_plus_the_burst() -> None:
    rate = 7.0
    times = starts(TokenBucket(rate, tokens=1.0), 500)
    for start in times:
        inside = sum(1 for t in times if start <= t < start + 10.0)
        assert inside <= rate * 10.0 + 1


def test_a_batch_larger_than_the_burst_waits_for_a_full_bucket_and_leaves_debt() -> None:
    bucket = TokenBucket(10.0)  # burst 1
    assert bucket.take(5, 0.0) == pytest.approx(0.1)
    assert bucket.take(5, 0.1) == 0.0
    assert bucket.tokens == pytest.approx(-4.0)
    # The debt is paid before the next start: 5 messages at 10/s take half a second in all.
    assert bucket.take(1, 0.1) == pytest.approx(0.5)


def test_a_lower_rate_applies_at_once_and_cuts_the_saved_tokens() -> None:
    bucket = TokenBucket(100.0)
    bucket.take(1, 0.0)
    bucket.set_rate(2.0, 10.0)  # 10 tokens saved at the old burst, cut to the new burst of 1
    assert bucket.tokens == pytest.approx(1.0)
    assert bucket.take(1, 10.0) == 0.0
    assert bucket.take(1, 10.0) == pytest.approx(0.5)


def test_lifting_the_limit_lets_everything_start() -> None:
    bucket = TokenBucket(1.0)
    bucket.take(1, 0.0)
    bucket.set_rate(None, 0.0)
    assert bucket.take(50, 0.0) == 0.0


@pytest.mark.parametrize(
    ("capacity", "rate", "task_seconds", "expected"),
    [
        (8, None, 0.5, 8),  # no limit: the whole capacity
        (8, 2.0, None, 2),  # a second of arrivals before any duration is known
        (8, 2.0, 0.5, 3),  # 2/s x (0.5 s running + 1 s ahead)
        (8, 20.0, 0.5, 8),  # the limit is above what the capacity does: capacity
        (8, 0.1, 0.2, 1),  # never below one
    ],
)
def test_window_is_littles_law_within_one_and_the_capacity(
    capacity: int, rate: float | None, task_seconds: float | None, expected: int
) -> None:
    assert rate_limit.window(capacity, rate, task_seconds) == expected


@pytest.mark.parametrize(
    ("current", "window", "expected"),
    [(8, 8, None), (8, 3, 3), (4, 3, None), (6, 3, None), (7, 3, 3), (2, 5, 5)],
)
def test_prefetch_follows_the_window_with_hysteresis(current: int, window: int, expected: int | None) -> None:
    assert rate_limit.prefetch_to_set(current, window) == expected


@pytest.mark.parametrize(("text", "expected"), [("", None), (" \n", None), ("2.5\n", 2.5), ("40", 40.0)])
def test_share_file_content(text: str, expected: float | None) -> None:
    assert rate_limit.parse_share(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "fast"])
def test_a_bad_share_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"positive number|could not convert"):
        rate_limit.parse_share(text)


def test_the_tightest_limit_holds() -> None:
    assert rate_limit.combined_rate(None, None) is None
    assert rate_limit.combined_rate(5.0, None) == 5.0
    assert rate_limit.combined_rate(5.0, 2.0) == 2.0


def test_task_duration_average_moves_towards_new_samples() -> None:
    average = rate_limit.moving_average(None, 1.0)
    assert average == 1.0
    assert rate_limit.moving_average(average, 2.0) == pytest.approx(1.2)
