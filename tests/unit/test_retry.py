"""The one retry loop (`core.retry.retry`) that the Daily client and the OTLP exporter share,
as a table: each row is a script of attempt outcomes and what the loop must do with it,
driven by a fake clock and sleep."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from daily_otel_bridge.core.retry import Failure, backoff_delay, parse_retry_after, retry


class Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(Exception):
    """Observed by the loop with no retry time, then raised."""


class Unclassified(Exception):
    """`classify` returns None: leaves at once, unobserved."""


def classify(error: Exception) -> Failure | None:
    if isinstance(error, Transient):
        return Failure("transient", retry_after=error.retry_after)
    if isinstance(error, Permanent):
        return Failure("permanent", retryable=False)
    return None


@dataclass
class Rig:
    """A fake clock that advances only by the waits, and a record of what the loop did."""

    now: float = 100.0
    events: list[tuple[object, ...]] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))
        self.now += seconds

    def attempt_failed(self, error_type: str, message: str, retry_in: float | None) -> None:
        self.events.append(("failed", error_type, message, retry_in))

    def succeeded(self) -> None:
        self.events.append(("succeeded",))

    def on_retry(self, error: Exception, wait: float) -> None:
        self.events.append(("on_retry", str(error), wait))


# Each script entry: an exception to raise, or a value to return.
Script = list[Exception | str]


@pytest.mark.parametrize(
    ("script", "max_attempts", "max_elapsed", "result", "events"),
    [
        pytest.param(["ok"], 5, None, "ok:0", [("succeeded",)], id="first-try"),
        pytest.param(
            [Transient("a", 2.0), Transient("b", 3.0), "ok"],
            5,
            None,
            "ok:2",
            [
                ("failed", "transient", "a", 2.0),
                ("on_retry", "a", 2.0),
                ("sleep", 2.0),
                ("failed", "transient", "b", 3.0),
                ("on_retry", "b", 3.0),
                ("sleep", 3.0),
                ("succeeded",),
            ],
            id="hints-honoured-then-success",
        ),
        pytest.param(
            [Transient("a", 1.0), Transient("b", 1.0), Transient("c", 1.0)],
            3,
            None,
            Transient,
            [
                ("failed", "transient", "a", 1.0),
                ("on_retry", "a", 1.0),
                ("sleep", 1.0),
                ("failed", "transient", "b", 1.0),
                ("on_retry", "b", 1.0),
                ("sleep", 1.0),
                ("failed", "transient", "c", None),
            ],
            id="attempts-used-up-last-has-no-wait",
        ),
        pytest.param(
            [Transient("a", 4.0), Transient("b", 4.0), "ok"],
            None,
            6.0,
            Transient,
            [
                ("failed", "transient", "a", 4.0),
                ("on_retry", "a", 4.0),
                ("sleep", 4.0),
                ("failed", "transient", "b", None),
            ],
            id="deadline-wait-would-end-past-it",
        ),
        pytest.param(
            [Transient("a", 3.0), Transient("b", 3.0), "ok"],
            None,
            6.0,
            "ok:2",
            [
                ("failed", "transient", "a", 3.0),
                ("on_retry", "a", 3.0),
                ("sleep", 3.0),
                ("failed", "transient", "b", 3.0),
                ("on_retry", "b", 3.0),
                ("sleep", 3.0),
                ("succeeded",),
            ],
            id="deadline-wait-ending-on-it-is-taken",
        ),
        pytest.param(
            [Transient("a", 50.0)],
            None,
            10.0,
            Transient,
            [("failed", "transient", "a", None)],
            id="hint-beyond-deadline-gives-up-at-once",
        ),
        pytest.param(
            [Transient("a", 1.0), Permanent("p"), "ok"],
            5,
            None,
            Permanent,
            [
                ("failed", "transient", "a", 1.0),
                ("on_retry", "a", 1.0),
                ("sleep", 1.0),
                ("failed", "permanent", "p", None),
            ],
            id="permanent-observed-then-raised",
        ),
        pytest.param(
            [Unclassified("u"), "ok"],
            5,
            None,
            Unclassified,
            [],
            id="unclassified-leaves-unobserved",
        ),
        pytest.param(
            [Transient("a", None), Transient("b", None), "ok"],
            5,
            None,
            "ok:2",
            [
                ("failed", "transient", "a", "backoff0"),
                ("on_retry", "a", "backoff0"),
                ("sleep", "backoff0"),
                ("failed", "transient", "b", "backoff1"),
                ("on_retry", "b", "backoff1"),
                ("sleep", "backoff1"),
                ("succeeded",),
            ],
            id="no-hint-exponential-backoff",
        ),
        pytest.param(
            [Transient("a", None)],
            1,
            None,
            Transient,
            [("failed", "transient", "a", None)],
            id="single-attempt-never-waits",
        ),
    ],
)
async def test_retry_table(
    script: Script,
    max_attempts: int | None,
    max_elapsed: float | None,
    result: str | type[Exception],
    events: list[tuple[object, ...]],
) -> None:
    rig = Rig()
    calls: list[int] = []

    async def attempt(number: int) -> str:
        calls.append(number)
        step = script[number]
        if isinstance(step, Exception):
            raise step
        return f"{step}:{number}"

    # The same seed drawn in the same order gives the waits the loop must have used.
    expected_backoff = random.Random(7)
    backoffs = {f"backoff{n}": backoff_delay(n, cap=2.0, rng=expected_backoff) for n in range(4)}
    expected = [tuple(backoffs.get(x, x) if isinstance(x, str) else x for x in e) for e in events]

    async def run() -> str:
        return await retry(
            attempt,
            classify,
            max_attempts=max_attempts,
            max_elapsed=max_elapsed,
            backoff_cap=2.0,
            observer=rig,
            on_retry=rig.on_retry,
            sleep=rig.sleep,
            clock=rig.clock,
            rng=random.Random(7),
        )

    if isinstance(result, str):
        assert await run() == result
    else:
        with pytest.raises(result) as raised:
            await run()
        # The very exception of the last attempt, not a wrapper.
        assert raised.value is script[calls[-1]]
    assert rig.events == expected
    assert calls == list(range(len(calls)))


@pytest.mark.parametrize(
    ("attempt", "cap", "low", "high"),
    [(0, 30.0, 0.25, 0.5), (3, 30.0, 2.0, 4.0), (10, 30.0, 15.0, 30.0), (-1, 30.0, 0.25, 0.5)],
)
def test_backoff_delay_bounds(attempt: int, cap: float, low: float, high: float) -> None:
    rng = random.Random(1)
    for _ in range(200):
        assert low <= backoff_delay(attempt, cap=cap, rng=rng) <= high


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("  7 ", 7.0),
        ("1.5", 1.5),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=40.0) == seconds
