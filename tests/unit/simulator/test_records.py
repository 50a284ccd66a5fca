"""The record generator: determinism from the seed, record shape and layout, validation."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from daily_otel_bridge.testing.simulator import (
    Simulator,
    SimulatorConfig,
)

from ._helpers import (
    BASE,
    ISO_RE,
    FakeClock,
    cfg,
)


def test_determinism_from_seed() -> None:
    def dump(config: SimulatorConfig) -> list[dict[str, Any]]:
        sim = Simulator(config, clock=FakeClock(BASE))
        return list(sim.ground_truth("demo")) + list(sim.ground_truth("demo", kind="metrics"))

    a = dump(cfg(seed=7, duplicate_ratio=0.05, late_ratio=0.1, late_delay=5))
    b = dump(cfg(seed=7, duplicate_ratio=0.05, late_ratio=0.1, late_delay=5))
    c = dump(cfg(seed=8, duplicate_ratio=0.05, late_ratio=0.1, late_delay=5))
    assert a == b
    assert a != c
    assert len(a) > 5 * 200 * 0.8


def test_cache_eviction_regenerates_identically() -> None:
    sim = Simulator(cfg(meetings_per_domain=4, cache_meetings=1), clock=FakeClock(BASE))
    first = list(sim.ground_truth("demo"))
    assert first == list(sim.ground_truth("demo"))


def test_record_shape_and_layout() -> None:
    sim = Simulator(cfg(duplicate_ratio=0.05), clock=FakeClock(BASE))
    records = list(sim.ground_truth("demo"))
    assert len(records) == 5 * 200
    first = records[0]
    assert list(first) == [
        "time",
        "clientTime",
        "message",
        "mtgSessionId",
        "userSessionId",
        "peerId",
        "domainName",
        "level",
        "code",
    ]
    for r in records:
        assert ISO_RE.match(r["time"])
        assert ISO_RE.match(r["clientTime"])
        assert r["level"] in (0, 1, 2)
        assert r["code"] is None or isinstance(r["code"], int)
        assert r["domainName"] == "demo"
    assert any(r["peerId"] is None for r in records)
    assert any(r["peerId"] is not None for r in records)
    assert any(r["code"] is None for r in records)
    assert len({r["message"] for r in records}) > 10
    # byte-identical duplicates exist
    dumped = [json.dumps(r) for r in records]
    assert any(dumped[i] == dumped[i - 1] for i in range(1, len(dumped)))
    # all within [base - history, base - 30 s]
    lo = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE - 1800))
    hi = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE - 30))
    assert all(lo <= r["time"][:19] <= hi for r in records)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="tie_ratio"):
        SimulatorConfig(tie_ratio=1.5)
    with pytest.raises(ValueError, match="unique"):
        SimulatorConfig(domains={"a": "k", "b": "k"})


def test_config_validation_of_new_knobs() -> None:
    with pytest.raises(ValueError, match="latency"):
        cfg(latency=0.1, latency_jitter=0.2)
    with pytest.raises(ValueError, match="error_429_ratio"):
        cfg(error_429_ratio=1.5)
    with pytest.raises(ValueError, match=r"error_429_ratio \+ error_5xx_ratio"):
        cfg(error_429_ratio=0.6, error_5xx_ratio=0.6)
