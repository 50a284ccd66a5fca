"""One retry loop for calls that fail for a while: Daily's REST API and the OTLP export.

Try; classify the failure; wait (the server's hint when it gave one, else exponential
backoff with full jitter); give up after `max_attempts` attempts or when the next wait would
end past `max_elapsed`. Pure apart from the `sleep` and `clock` it is given, so the policy
is testable as a table; what differs between the callers (which errors are worth another
try, a token bucket to pause, a counter to bump) comes in through `classify` and `on_retry`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TypeVar

from daily_otel_bridge.core.trouble import AttemptObserver

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failure:
    """What `classify` says of an exception raised by one attempt."""

    # The observer's word for the failure (`daily_api`, `export_transient`, ...).
    error_type: str
    # False: give up at once (the observer still hears of it, with no retry time).
    retryable: bool = True
    # The server's own wait (Retry-After, gRPC RetryInfo), already capped by the caller.
    retry_after: float | None = None


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter: uniform in [ceiling / 2, ceiling], where the ceiling
    is min(cap, base * 2**attempt).

    The jitter keeps several bridges (or domains) that failed together from retrying in
    lockstep; the lower half is left out so that a retry never comes back at once.
    """
    ceiling = min(cap, base * (2 ** max(attempt, 0)))
    return (rng or random).uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now if now is not None else time.time()
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


async def retry(
    attempt: Callable[[int], Awaitable[T]],
    classify: Callable[[Exception], Failure | None],
    *,
    max_attempts: int | None = None,
    max_elapsed: float | None = None,
    backoff_base: float = 0.5,
    backoff_cap: float = 30.0,
    observer: AttemptObserver | None = None,
    on_retry: Callable[[Exception, float], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """`await attempt(n)` for n = 0, 1, ... until it returns; its result is returned.

    An exception `classify` returns None for leaves at once, untouched and unobserved (the
    attempt has dealt with it). Otherwise the observer hears `attempt_failed(error_type,
    str(exc), wait)` before each wait, and `retry_in=None` when the loop gives up (not
    retryable, attempts used up, or the wait would end past the deadline), after which the
    exception is raised. `on_retry(exc, wait)` runs just before each wait. A success tells
    the observer `succeeded()`.
    """
    # Looked up at call time rather than bound as a default, so a patched asyncio.sleep holds.
    pause = sleep or asyncio.sleep
    deadline = clock() + max_elapsed if max_elapsed is not None else None
    number = 0
    while True:
        try:
            result = await attempt(number)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            # The attempt count is checked before a wait is drawn: a last attempt draws
            # nothing from the jitter source.
            if not failure.retryable or (max_attempts is not None and number + 1 >= max_attempts):
                _failed(observer, failure, exc, None)
                raise
            wait = failure.retry_after
            if wait is None:
                wait = backoff_delay(number, base=backoff_base, cap=backoff_cap, rng=rng)
            if deadline is not None and clock() + wait > deadline:
                _failed(observer, failure, exc, None)
                raise
            _failed(observer, failure, exc, wait)
            if on_retry is not None:
                on_retry(exc, wait)
            number += 1
            await pause(wait)
            continue
        if observer is not None:
            observer.succeeded()
        return result


def _failed(
    observer: AttemptObserver | None, failure: Failure, exc: Exception, retry_in: float | None
) -> None:
    if observer is not None:
        observer.attempt_failed(failure.error_type, str(exc), retry_in)
