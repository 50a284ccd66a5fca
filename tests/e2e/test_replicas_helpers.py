"""The request-log arithmetic of the replica tests, on hand-made logs (no process)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.replicas import overlapping_readers, reading_periods, replica_of


def req(who: str | None, arrived: float, finished: float) -> dict[str, Any]:
    return {"replica": who, "arrived": arrived, "finished": finished}


def test_replica_of_user_agent() -> None:
    assert replica_of("daily-otel-bridge/0.1.0 (replica pod-a-1)") == "pod-a-1"
    assert replica_of("daily-otel-bridge/0.1.0") is None


def test_reading_periods_merge_consecutive_requests_of_one_replica() -> None:
    log = [req("a", 0, 1), req("a", 1, 5), req("a", 2, 3), req("b", 6, 7), req("a", 8, 9)]
    assert reading_periods(log) == [("a", 0, 5), ("b", 6, 7), ("a", 8, 9)]


@pytest.mark.parametrize(
    ("log", "problems"),
    [
        ([req("a", 0, 1), req("b", 2, 3)], 0),  # a clean hand-over
        ([req("a", 0, 1), req("b", 1, 3)], 0),  # touching is fine
        ([req("a", 0, 5), req("b", 2, 3)], 1),  # b read while a's request was in flight
        ([req("a", 0, 1), req("b", 2, 3), req("a", 2.5, 4)], 1),  # a came back too early
        ([req("a", 3, 4), req("a", 0, 1)], 0),  # order of the log does not matter
    ],
)
def test_overlapping_readers(log: list[dict[str, Any]], problems: int) -> None:
    assert len(overlapping_readers(log)) == problems


def test_metric_sums_the_matching_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from tests.e2e.replicas import Replica

    text = "\n".join(
        [
            "# HELP daily_otel_bridge_lease_losses_total Leases lost",
            'daily_otel_bridge_lease_losses_total{reason="deadline",replica="r1"} 3.0',
            'daily_otel_bridge_lease_losses_total{reason="taken",replica="r1"} 1.0',
            'daily_otel_bridge_lease_losses_total{reason="taken",replica="r2"} 5.0',
            'daily_otel_bridge_lease_losses_created{reason="taken",replica="r1"} 1.7e9',
        ]
    )
    replica = Replica("r1", Path("c"), 1, Path("l"), {})
    monkeypatch.setattr(replica, "get", lambda path: (200, text))
    name = "daily_otel_bridge_lease_losses_total"
    assert replica.metric(name, {"replica": "r1"}) == 4.0
    assert replica.metric(name, {"replica": "r1", "reason": "taken"}) == 1.0
    assert replica.metric(name, {"replica": "r9"}) is None
