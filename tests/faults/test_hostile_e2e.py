"""The "done when" run: the real daemon against a Daily written apart from this project that
misbehaves in every documented-or-undocumented way, and an OTLP receiver that keeps failing.

Zero well-formed records lost, every malformed one in the dead-letter table and logged once
with its session and reason, a session going 404 and a key revoked mid-run hurting nobody
else, the daemon never giving up.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daily_otel_bridge.testing.otlp_receiver import Fault, OtlpReceiver
from tests.e2e.harness import BridgeConfig, domain, start_daemon, stop
from tests.expectations import expected_uids
from tests.faults import hostile_data
from tests.faults._support import (
    dead_letters,
    events,
    wait_for,
)
from tests.faults.hostile_daily import HostileDaily, Hostility

KEYS = {"acme": "hostile-acme-key-0123456789abcdef", "beta": "hostile-beta-key-fedcba9876543210"}


@contextmanager
def flaky(receiver: OtlpReceiver, period: float = 4.0) -> Iterator[list[str]]:
    """Cycle the receiver through failures until the block ends; yields the log of what it did.

    Each failure is short enough for the exporter's own retries (max_retry_time 20 s) to ride
    out: what this test measures is losses, and a sweep failing over and over would only make
    the scheduler back off for minutes (that path has its own test, test_backend_outage).
    """
    done = threading.Event()
    happened: list[str] = []
    faults = itertools.cycle(
        [
            ("unavailable", Fault(grpc_status="UNAVAILABLE", http_status=503, count=2)),
            (
                "exhausted+retryinfo",
                Fault(
                    grpc_status="RESOURCE_EXHAUSTED",
                    http_status=429,
                    retry_after_seconds=0.3,
                    count=2,
                ),
            ),
            ("slow", Fault(delay_seconds=1.0, count=2)),
            ("down", None),
            ("times out after storing", Fault(delay_seconds=3.5, count=1)),
            ("deadline", Fault(grpc_status="DEADLINE_EXCEEDED", http_status=504, count=1)),
        ]
    )

    def run() -> None:
        while not done.wait(period):
            name, fault = next(faults)
            happened.append(name)
            if fault is None:
                receiver.stop_serving()
                done.wait(2.0)
                receiver.resume_serving()
            else:
                receiver.set_fault(fault)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield happened
    finally:
        done.set()
        thread.join(10)
        receiver.set_fault(None)


def populate(server: HostileDaily, rng: random.Random) -> dict[str, Any]:
    """Sessions of two domains; returns what the test needs to know about them."""
    now_ms = int(time.time() * 1000)
    info: dict[str, Any] = {"malformed": [], "gone": None, "live": []}
    for name, key in KEYS.items():
        server.add_domain(name, key)
    plan = [("acme", 4, False), ("acme", 2, True), ("beta", 2, False)]
    for dom, count, live in plan:
        for n in range(count):
            sid = str(uuid.UUID(int=rng.getrandbits(128)))
            users = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3)]
            if live:
                start_ms = now_ms - 5_000
                server.add_session(dom, sid, f"live-{n}", start_ms // 1000, None, users)
                info["live"].append((dom, sid))
            else:
                start_ms = now_ms - rng.randint(20, 50) * 60_000
                end_s = (start_ms + 10 * 60_000) // 1000
                server.add_session(dom, sid, f"room-{n % 3}", start_ms // 1000, end_s, users)
            fill_session(server, rng, dom, sid, users, start_ms, live, info)
    return info


def fill_session(
    server: HostileDaily,
    rng: random.Random,
    dom: str,
    sid: str,
    users: list[str],
    start_ms: int,
    live: bool,
    info: dict[str, Any],
) -> None:
    t = start_ms + 1000
    count = 120 if live else 200
    for i in range(count):
        t += rng.choice([0, 0, 1, 3, 40, 250])  # many ties
        user = rng.choice(users)
        visible = None
        if live:
            t = start_ms + 1000 + i * 120  # spread over about 15 s from now
            # Late arrivals: visible up to 8 s after their own time (clients upload in batches).
            visible = t / 1000 + rng.choice([0, 0, 0.5, 3, 8])
        body = hostile_data.good(rng, dom, sid, user, t)
        if rng.random() < 0.05:
            # Out of order: Daily sorts on its own clock, `time` a few ms off it.
            body["time"] = hostile_data.iso_ns(t + rng.randint(-3, 3))
        server.add_record(dom, sid, t, body, visible_from=visible)
        if rng.random() < 0.04:  # a byte-identical twin
            server.add_record(dom, sid, t, dict(body), visible_from=visible)
        if i == 100:
            for weird in hostile_data.weird_but_valid(rng, dom, sid, user, t):
                server.add_record(dom, sid, t, weird, visible_from=visible)
            for bad, reason in hostile_data.malformed(rng, dom, sid, user, t):
                server.add_record(dom, sid, t, bad, good=False, visible_from=visible)
                info["malformed"].append((dom, sid, bad, reason))
        if i == 50 and not live and rng.random() < 0.5:
            big = "x" * (hostile_data.MIB - 10) + "\u00e9\u672b\U0001f600"
            server.add_record(dom, sid, t, hostile_data.good(rng, dom, sid, user, t, message=big))


def good_bodies(server: HostileDaily, dom: str, sid: str) -> list[Any]:
    return [r.body for r in server.records(dom, sid) if r.good]


def by_session(receiver: OtlpReceiver) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for log in receiver.log_records():
        sid = str(log.attributes["daily.mtg_session_id"])
        out.setdefault(sid, Counter())[str(log.attributes["log.record.uid"])] += 1
    return out


def test_hostile_daily_and_flaky_receiver_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(20260323)
    hostility = Hostility(seed=7)
    with (
        HostileDaily(hostility) as server,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        info = populate(server, rng)
        want = {
            (dom, sid): expected_uids(good_bodies(server, dom, sid))
            for dom in KEYS
            for sid in server.domains[dom].sessions
        }
        live = [sid for dom, sid in info["live"] if dom == "acme"]
        gone = ""  # chosen below
        bridge = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={
                "protocol": "grpc",
                "endpoint": receiver.grpc_endpoint,
                "batch_size": 50,
                "timeout": "3s",
                "max_retry_time": "20s",
            },
            domains=[
                domain(
                    name,
                    key,
                    server.url,
                    page_size=200,
                    request_timeout="1500ms",
                    max_quiet_interval="2s",
                    **(
                        {
                            "export": {
                                "protocol": "http/protobuf",
                                "endpoint": receiver.http_endpoint,
                            }
                        }
                        if name == "beta"
                        else {}
                    ),
                )
                for name, key in KEYS.items()
            ],
        )
        config = bridge.write()
        log_path = tmp_path / "daemon.log"

        def complete(dom: str, sid: str | None = None) -> bool:
            got = by_session(receiver)
            return all(
                not (w - got.get(s, Counter()))
                for (d, s), w in want.items()
                if d == dom and (sid is None or s == sid) and s != gone
            )

        def started(dom: str, sid: str | None = None) -> bool:
            got = by_session(receiver)
            return any(
                w & got.get(s, Counter())
                for (d, s), w in want.items()
                if d == dom and (sid is None or s == sid)
            )

        # Every kind of failed answer at least once, whatever the dice say.
        for kind in (
            "429-date",
            "429-seconds",
            "429-none",
            "502",
            "hang",
            "reset",
            "truncated",
            "html",
        ):
            server.force(kind, count=1, endpoint="logs" if kind != "502" else None)
        daemon = start_daemon(config, log_path=log_path)
        t0 = time.monotonic()
        try:
            with flaky(receiver) as happened:
                # A session that starts answering 404, once some of it is through (a live
                # one: it is polled to the end, while ended ones retire).
                assert wait_for(lambda: any(started("acme", s) for s in live), 60, 0.5)
                gone = next(s for s in live if started("acme", s))
                server.make_gone("acme", gone)
                # The key of beta revoked mid-run.
                assert wait_for(lambda: started("beta"), 60, 0.3), _tail(log_path)
                server.revoke("beta")
                # Everything else keeps flowing.
                assert wait_for(lambda: complete("acme"), 120, 0.5), _tail(log_path)
                assert daemon.poll() is None, "the daemon gave up"
            print(f"acme complete after {time.monotonic() - t0:.1f}s")
            # Beta may have been backing off from earlier faults: wait until it met the 401.
            assert wait_for(
                lambda: [
                    e
                    for e in events(log_path.read_text(), "domain failed")
                    if e.get("error_type") == "daily_auth"
                ],
                120,
                0.5,
            ), _tail(log_path)
            # The key is fixed: a restart (the operator's move after rotating a key) resumes.
            server.restore("beta")
            assert stop(daemon, signal.SIGTERM) == 0
            daemon = start_daemon(config, log_path=log_path)
            # (Signal handlers are installed by then: a SIGTERM during imports would kill it.)
            assert wait_for(lambda: started_count(log_path) == 2, 30), _tail(log_path)
            assert wait_for(lambda: complete("beta"), 90, 0.5), _tail(log_path)
        finally:
            code = stop(daemon, signal.SIGTERM)
        assert code == 0

        got = by_session(receiver)
        lost: dict[str, int] = {}
        strangers: dict[str, set[str]] = {}
        phantom_twins: dict[str, int] = {}
        for (dom, sid), w in want.items():
            mine = got.get(sid, Counter())
            if sid == gone:
                assert mine, "the session delivered nothing before its 404"
            else:
                lost[f"{dom}/{sid}"] = sum((w - mine).values())
            # Nothing Daily never served is invented (checked last, below), beyond the one
            # limit the README states: a late record inserted ahead of a run of
            # byte-identical records while the bridge pages across it may make one more
            # twin (`<digest>-n` with n above the copies Daily holds). Those are counted
            # and bounded here; anything else is a stranger.
            extra = set(mine) - set(w)
            copies = Counter(uid.partition("-")[0] for uid in w)
            phantoms = {u for u in extra if "-" in u and copies[u.partition("-")[0]] >= 2}
            phantom_twins[sid] = len(phantoms)
            if extra - phantoms:
                strangers[sid] = extra - phantoms
        assert not any(lost.values()), f"records lost: {lost}"
        dom_of = {sid: dom for dom, sid in want}
        print("receiver faults:", Counter(happened), "server faults:", server.counts)
        assert {"429", "502", "hang", "reset", "truncated", "html", "401", "404"} <= set(
            server.counts
        )

        # Every malformed record: one dead letter, logged once, with its session and reason.
        text = log_path.read_text()
        letters = dead_letters(config)
        logged = events(text, "malformed record kept as a dead letter")
        planted = Counter((d, s) for d, s, _, _ in info["malformed"] if s != gone)
        kept = Counter((x["domain"], x["session"]) for x in letters if x["session"] != gone)
        assert kept == planted, (sorted(planted.items()), sorted(kept.items()))
        once = Counter((e["session"], e["uid"]) for e in logged)
        assert max(once.values()) == 1, "a malformed record was logged twice"
        assert {(x["session"], x["uid"]) for x in letters} == set(once)
        for entry in logged:
            assert entry["session"]
            assert entry["reason"]
            assert entry["domain"]
        for _, sid, body, word in info["malformed"]:
            if sid == gone:
                continue
            mine = [x for x in letters if x["session"] == sid and json.loads(x["raw"]) == body]
            assert len(mine) == 1, body
            assert word in mine[0]["reason"], (word, mine[0]["reason"])
        # It said what went wrong, in words an operator can act on.
        assert events(text, "session not found at Daily")
        assert [e for e in events(text, "domain failed") if e.get("error_type") == "daily_auth"]

        # Last: a uid that names no record Daily served (a re-read taken for a byte-identical
        # twin of the anchor, `<digest>-2`: see the property tests) is a duplicate that
        # downstream de-duplication on log.record.uid cannot remove.
        print("phantom twins (README limits):", {s: n for s, n in phantom_twins.items() if n})
        assert sum(phantom_twins.values()) <= 8, phantom_twins
        assert not strangers, "\n".join(
            _explain(receiver, server, dom_of[sid], sid, uids) for sid, uids in strangers.items()
        )


def _explain(
    receiver: OtlpReceiver, server: HostileDaily, dom: str, sid: str, uids: set[str]
) -> str:
    lines = [f"{len(uids)} unexpected uids in {dom}/{sid}"]
    for log in receiver.log_records():
        if str(log.attributes["log.record.uid"]) in uids:
            body = str(log.body)[:80]
            same = [
                r.body
                for r in server.records(dom, sid)
                if r.good and isinstance(r.body, dict) and str(r.body.get("message"))[:80] == body
            ]
            lines.append(f"{log.attributes} body={body!r} time={log.time_unix_nano} truth={same}")
    return "\n".join(lines[:20])


def started_count(path: Path) -> int:
    return len(events(path.read_text(), "bridge started")) if path.exists() else 0


def _tail(path: Path) -> str:
    return path.read_text()[-5000:] if path.exists() else ""
