"""Issue 17's sources through the real daemon process, the simulator (a separate process) and
a real OTLP receiver: meeting summaries, presence and the REST API's logs, each record once
across a SIGKILL, a restart and a `--once` pass; no planted token in any exported attribute
or log line; the domain within `requests_per_second` counted at the simulator; and a
`/presence` that answers 500 past the retries stopping only itself."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.core.api_logs import EVENT_NAME as API_EVENT
from daily_otel_bridge.core.summaries import (
    PARTICIPANT_EVENT,
    SUMMARY_EVENT,
    participant_uid,
    summary_uid,
)
from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from daily_otel_bridge.testing.simulator import PLANTED_SECRETS
from tests.e2e.harness import (
    BridgeConfig,
    SimulatorProcess,
    domain,
    run_once,
    simulator,
    start_daemon,
    stop,
    wait_until,
)
from tests.e2e.test_service import free_port, http_get
from tests.expectations import expected_uids

pytestmark = pytest.mark.e2e

KEY = "sim-key-sources-0123456789"
RPS = 5


def api_get(sim: SimulatorProcess, path: str) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the loopback simulator
        sim.url + path, headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
        return json.loads(resp.read())


def api_log_ids(sim: SimulatorProcess) -> set[str]:
    return {
        e["id"]
        for source in ("api", "webhook")
        for e in api_get(sim, f"/logs/api?source={source}&limit=100")
    }


def summary_truth(sim: SimulatorProcess) -> Counter[str]:
    want: Counter[str] = Counter()
    for m in api_get(sim, "/meetings?limit=100")["data"]:
        if m["ongoing"]:
            continue
        want[summary_uid(m["id"])] += 1
        for p in m.get("participants") or []:
            want[participant_uid(m["id"], p["participant_id"])] += 1
    return want


def uids(receiver: OtlpReceiver, *events: str) -> Counter[str]:
    return Counter(
        str(r.attributes["log.record.uid"])
        for r in receiver.log_records()
        if r.event_name in events
    )


def positions(state: Path) -> dict[str, str]:
    if not state.exists():
        return {}
    db = sqlite3.connect(str(state))
    try:
        return dict(db.execute("SELECT stream, position FROM positions").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def exported_text(receiver: OtlpReceiver) -> str:
    return "\n".join(f"{r.body!r} {r.attributes!r}" for r in receiver.log_records())


def test_every_source_once_across_a_sigkill_a_restart_and_a_pass(tmp_path: Path) -> None:
    with (
        simulator(
            [
                "--seed",
                "17",
                "--domain",
                f"acme={KEY}",
                "--meetings",
                "3",
                "--records",
                "40",
                "--participants",
                "3",
                "--live",
                "--live-meetings",
                "1",
                "--live-rate",
                "2",
                "--churn-meetings",
                "2",
                "--churn-delay",
                "15",
                "--churn-over",
                "2",
                "--churn-min-duration",
                "4",
                "--churn-max-duration",
                "6",
                "--churn-late-ratio",
                "0",
                "--api-log-history",
                "60",
                "--presence-lag",
                "1",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        api_ids = api_log_ids(sim)
        assert len(api_ids) == 60 + 12
        time.sleep(1.1)  # the test's own requests out of the budget's window
        state = tmp_path / "state.db"
        port = free_port()
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=state,
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint, "batch_size": 100},
            health={"listen": f"127.0.0.1:{port}"},
            domains=[
                domain(
                    "acme",
                    KEY,
                    sim.url,
                    requests_per_second=RPS,
                    meeting_summaries=True,
                    presence=True,
                    api_logs=True,
                    api_logs_bodies=True,
                )
            ],
        ).write()
        log_path = tmp_path / "daemon.log"

        # Run 1: the past meetings' summaries and the API log, committed; then SIGKILL.
        first = start_daemon(config, log_path=log_path)
        historical = 3 * (1 + 3)

        def committed() -> bool:
            done = positions(state)
            summarised = json.loads(done.get("summaries", '{"done": []}'))["done"]
            return (
                len(summarised) >= 3
                and {"api_logs.api", "api_logs.webhook"} <= set(done)
                and len(uids(receiver, API_EVENT)) == len(api_ids)
            )

        assert wait_until(committed, timeout=60), log_path.read_text()[-3000:]
        assert len(uids(receiver, SUMMARY_EVENT, PARTICIPANT_EVENT)) == historical
        present = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        assert 'daily_otel_bridge_participants_present{domain="acme",room=""}' in present
        first.kill()
        first.wait(30)
        time.sleep(1.1)  # each process's budget in its own window

        # Run 2: the churn meetings start and end meanwhile; their summaries come once.
        second = start_daemon(config, log_path=log_path)
        try:

            def churn_summarised() -> bool:
                return len(uids(receiver, SUMMARY_EVENT)) >= 3 + 2

            assert wait_until(churn_summarised, timeout=90), log_path.read_text()[-3000:]
        finally:
            assert stop(second) == 0
        time.sleep(1.1)

        # A pass on the same state: nothing of these sources again.
        before = uids(receiver, SUMMARY_EVENT, PARTICIPANT_EVENT, API_EVENT)
        final = run_once(config)
        assert final.returncode == 0, final.stderr[-3000:]
        assert uids(receiver, SUMMARY_EVENT, PARTICIPANT_EVENT, API_EVENT) == before
        # Within the budget, counted where Daily counts it (before the test's own requests).
        stats = sim.stats()["domains"]["acme"]
        assert stats["max_per_second"] <= RPS + 1, stats["max_per_second"]

        want = summary_truth(sim)
        got = uids(receiver, SUMMARY_EVENT, PARTICIPANT_EVENT)
        # Every ended meeting that discovery saw end is summarised, each record once.
        assert got == want, f"missing {want - got}, twice {got - Counter(set(got))}"
        assert uids(receiver, API_EVENT) == Counter(api_ids)
        # No log record of an ended meeting lost either (the live one is still talking;
        # duplicates of /logs records are what the kill caught in flight).
        ended = {m["id"] for m in api_get(sim, "/meetings?limit=100")["data"] if not m["ongoing"]}
        truth = [r for r in sim.ground_truth("acme") if r["mtgSessionId"] in ended]
        assert not (expected_uids(truth) - uids(receiver, "daily.log"))

        # No planted token, nor the API key, in what was exported or in any log line.
        lines = log_path.read_text() + final.stdout + final.stderr
        exported = exported_text(receiver)
        for secret in (*PLANTED_SECRETS, KEY):
            assert secret not in exported
            assert secret not in lines


def test_a_failing_presence_stops_only_itself(tmp_path: Path) -> None:
    with (
        simulator(
            ["--seed", "3", "--domain", f"acme={KEY}", "--meetings", "3", "--records", "80"]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        sim.post("/faults", {"status": 500, "count": 100000, "endpoint": "presence"})
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            domains=[
                domain("acme", KEY, sim.url, presence=True, api_logs=True, meeting_summaries=True)
            ],
        ).write()
        result = run_once(config)
        assert result.returncode == 0, result.stderr[-3000:]
        truth = sim.ground_truth("acme")
        assert uids(receiver, "daily.log") == expected_uids(truth)
        assert len(uids(receiver, API_EVENT)) == 30 + 12  # the other sources went on
        assert len(uids(receiver, SUMMARY_EVENT)) == 3
        failed = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if "source poll failed" in line
        ]
        assert len(failed) == 1
        assert "presence" in failed[0]
        assert sim.stats()["requests"]["presence"] >= 2  # retried before giving up
