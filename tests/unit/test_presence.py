"""`core.presence`: counts per domain and room from a GET /presence answer."""

from __future__ import annotations

from typing import Any

import pytest

from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.core.presence import (
    PresenceCounts,
    count_presence,
    gauge_values,
    rooms_to_forget,
)


def person(pid: str, room: str = "cool-room") -> dict[str, Any]:
    return {
        "room": room,
        "id": pid,
        "userId": "u",
        "userName": "sean",
        "mtgSessionId": "m-1",
        "joinTime": "2020-11-01T23:46:38.000Z",
        "duration": 543,
    }


@pytest.mark.parametrize(
    ("answer", "total", "by_room"),
    [
        ({}, 0, {}),
        ({"cool-room": [person("a")]}, 1, {"cool-room": 1}),
        ({"a": [person("1"), person("2")], "b": [person("3")]}, 3, {"a": 2, "b": 1}),
        ({"a": [person("1"), person("1")]}, 1, {"a": 1}),  # listed twice: one person
        ({"a": [], "b": [person("1")]}, 1, {"b": 1}),  # an empty room is no series
        ({"a": [{"userName": "no id"}, "odd", None]}, 3, {"a": 3}),  # present, counted
        ({"a": [person("1")], "b": [person("1")]}, 2, {"a": 1, "b": 1}),  # per room
    ],
)
def test_counts(answer: Any, total: int, by_room: dict[str, int]) -> None:
    assert count_presence(answer) == PresenceCounts(total=total, by_room=by_room)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([], "presence is list, expected an object"),
        (None, "presence is NoneType, expected an object"),
        ({"a": {"id": "1"}}, "presence of a room is dict, expected a list"),
        ({"a": "secret-room-text"}, "presence of a room is str, expected a list"),
    ],
)
def test_malformed(answer: Any, reason: str) -> None:
    with pytest.raises(MalformedRecord) as info:
        count_presence(answer)
    assert str(info.value) == reason


def test_gauge_values_one_family_either_way() -> None:
    counts = {"a": 2, "b": 1}
    assert gauge_values(counts, room_label=True) == {"a": 2, "b": 1}
    assert gauge_values(counts, room_label=False) == {"": 3}
    assert gauge_values({}, room_label=False) == {"": 0}
    assert gauge_values({}, room_label=True) == {}


def test_rooms_to_forget() -> None:
    assert rooms_to_forget({"a", "b"}, {"b": 1, "c": 2}) == {"a"}
    assert rooms_to_forget(set(), {"b": 1}) == set()


# -- the gauges (`instruments.BridgeMetrics.set_by_room`) -------------------------------------


def _series(metrics: Any, name: str) -> dict[tuple[str, str], float]:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(metrics.registry).decode()
    return {
        (s.labels["domain"], s.labels["room"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


def test_presence_gauge_per_room_forgets_emptied_rooms() -> None:
    from daily_otel_bridge.instruments import BridgeMetrics

    metrics = BridgeMetrics()
    metrics.init_sources(
        "acme", meeting_summaries=True, presence=True, api_logs=False, room_label=True
    )
    name = "daily_otel_bridge_participants_present"
    gauge = metrics.participants_present
    metrics.set_by_room(gauge, "acme", {"a": 2, "b": 1}, room_label=True)
    assert _series(metrics, name) == {("acme", "a"): 2, ("acme", "b"): 1}
    metrics.set_by_room(gauge, "acme", {"b": 3}, room_label=True)
    assert _series(metrics, name) == {("acme", "b"): 3}
    metrics.set_by_room(gauge, "other", {"z": 1}, room_label=True)  # domains apart
    assert _series(metrics, name) == {("acme", "b"): 3, ("other", "z"): 1}


def test_presence_gauge_without_the_room_label_is_one_series() -> None:
    from daily_otel_bridge.instruments import BridgeMetrics

    metrics = BridgeMetrics()
    metrics.init_sources(
        "acme", meeting_summaries=True, presence=True, api_logs=False, room_label=False
    )
    name = "daily_otel_bridge_participants_present"
    assert _series(metrics, name) == {("acme", ""): 0}
    metrics.set_by_room(metrics.participants_present, "acme", {"a": 2, "b": 1}, room_label=False)
    assert _series(metrics, name) == {("acme", ""): 3}
    metrics.set_by_room(metrics.participants_present, "acme", {}, room_label=False)
    assert _series(metrics, name) == {("acme", ""): 0}
