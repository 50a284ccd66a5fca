"""Daily's webhooks through the real daemon: real HTTP into the receiver, the real SQLite
store, the real pipeline exporting to our OTLP receiver (gRPC). The simulator plays Daily's
REST API (and, in one test, Daily's webhook sender with its signing and retries).

What each test shows is a line of the README's "Webhooks" table (under Guarantees).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import (
    BridgeConfig,
    SimulatorProcess,
    domain,
    simulator,
    start_daemon,
    wait_until,
)
from tests.faults._support import free_port
from tests.webhook_inbox import OTHER_SECRET, SECRET, event_body, signed_headers

KEY = "webhooks-e2e-key-0123456789"
BASIC_USER = "daily"
BASIC_PASSWORD = "basic-auth-password-for-the-hook-7f3a"
VERIFICATION = b'{"test":"test"}'


def basic_header(user: str = BASIC_USER, password: str = BASIC_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def hook_headers(body: bytes, **kwargs: Any) -> dict[str, str]:
    """What Daily sends with `body` to a hook with basic auth."""
    return {**signed_headers(body, **kwargs), **basic_header()}


def webhook_uids(receiver: OtlpReceiver) -> Counter[str]:
    """uid -> times exported, of the records that are webhook events."""
    return Counter(
        str(r.attributes["log.record.uid"])
        for r in receiver.log_records()
        if "daily.webhook.time_source" in r.attributes
    )


@dataclass
class HookDaemon:
    """One daemon with the receiver on; `url` is the hook URL of domain acme."""

    config: Path
    state: Path
    log_path: Path
    hook_port: int
    health_port: int
    receiver: OtlpReceiver
    proc: subprocess.Popen[str] | None = None
    starts: int = 0
    accepted: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.hook_port}/webhooks/acme"

    def start(self) -> None:
        self.proc = start_daemon(self.config, log_path=self.log_path)
        self.starts += 1
        assert wait_until(self.listening, 30, 0.05), self.log()[-3000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(60)

    def listening(self) -> bool:
        return self.post(VERIFICATION, {**basic_header()})[0] == 200

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """(status, answer); status 0 when nothing answered."""
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url, data=body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.health_port}/metrics", timeout=10
        ) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(f"daily_otel_bridge_{name}{{"):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def inbox_rows(self) -> int:
        """Events waiting in the state file, read by a fresh connection (what is on disk)."""
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT count(*) FROM inbox WHERE pending").fetchone()
            return int(row[0])
        finally:
            db.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def hook_daemon(
    tmp_path: Path,
    *,
    sim_args: Sequence[str] = ("--meetings", "1", "--records", "20"),
    export: dict[str, Any] | None = None,
    receiver: OtlpReceiver | None = None,
    grpc_port: int | None = None,
    domain_overrides: dict[str, Any] | None = None,
    start: bool = True,
) -> Iterator[tuple[HookDaemon, SimulatorProcess]]:
    """The simulator (Daily's REST API), an OTLP receiver, and the daemon with its webhook
    receiver on a free port (basic auth on, secret `SECRET`)."""
    with simulator(["--seed", "5", "--domain", f"acme={KEY}", *sim_args], max_seconds=300) as sim:
        own = receiver is None and grpc_port is None
        if receiver is None:
            receiver = OtlpReceiver(http=False, observe_grpc_compression=False).start()
        endpoint = f"http://127.0.0.1:{grpc_port}" if grpc_port else receiver.grpc_endpoint
        hook_port, health_port = free_port(), free_port()
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": endpoint, "batch_timeout": "200ms"}
            | (export or {}),
            health={"enabled": True, "listen": f"127.0.0.1:{health_port}"},
            domains=[
                domain("acme", KEY, sim.url, webhook_secret=SECRET, **(domain_overrides or {}))
            ],
            extra={
                "webhooks": {
                    "listen": f"127.0.0.1:{hook_port}",
                    "basic_auth_user": BASIC_USER,
                    "basic_auth_password": BASIC_PASSWORD,
                }
            },
        ).write()
        daemon = HookDaemon(
            config, tmp_path / "state.db", tmp_path / "daemon.log", hook_port, health_port, receiver
        )
        try:
            if start:
                daemon.start()
            yield daemon, sim
        finally:
            daemon.kill()
            if own:
                receiver.stop()


def assert_no_secret_in(text: str) -> None:
    for secret in (SECRET, OTHER_SECRET, BASIC_PASSWORD, base64.b64decode(SECRET).decode()):
        assert secret not in text, "a secret reached a log line"


async def post_all(
    url: str, items: Sequence[tuple[bytes, dict[str, str]]], concurrency: int, spread: float
) -> list[int]:
    """POST every item (spread evenly over `spread` seconds, at most `concurrency` at once);
    the statuses, 0 for no answer."""
    limit = asyncio.Semaphore(concurrency)
    begin = time.perf_counter()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int, body: bytes, headers: dict[str, str]) -> int:
            delay = begin + spread * i / len(items) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with limit:
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        return resp.status
                except (aiohttp.ClientError, OSError):
                    return 0

        return list(
            await asyncio.gather(
                *(one(i, body, headers) for i, (body, headers) in enumerate(items))
            )
        )


# -- the tests -------------------------------------------------------------------------------

TYPES = ("recording.error", "participant.joined", "dialout.warning", "no-such.type-yet")


def test_signed_events_are_exported_once_each_and_forged_ones_refused(tmp_path: Path) -> None:
    with hook_daemon(tmp_path) as (daemon, _):
        ids = [f"ev-{i}" for i in range(40)]
        bodies = {
            event_id: event_body(event_id, TYPES[i % len(TYPES)], room="r", timestamp=1_765_000_000)
            for i, event_id in enumerate(ids)
        }
        for event_id, body in bodies.items():
            status, answer = daemon.post(body, hook_headers(body))
            assert (status, json.loads(answer)["status"]) == (200, "stored"), event_id
        # Daily sends some again before they are exported (at once) ...
        for event_id in ids[:5]:
            body = bodies[event_id]
            assert daemon.post(body, hook_headers(body)) == (200, '{"status": "repeat"}')
        # ... forged ones: a tampered body, the wrong secret, a stale timestamp, no auth.
        good = event_body("forged-0", "recording.error")
        tampered = good.replace(b"recording.error", b"recording.ended")
        assert daemon.post(tampered, hook_headers(good))[0] == 401
        wrong = event_body("forged-1")
        assert daemon.post(wrong, hook_headers(wrong, secret=OTHER_SECRET))[0] == 401
        stale = event_body("forged-2")
        assert daemon.post(stale, hook_headers(stale, timestamp=time.time() - 3600))[0] == 401
        assert daemon.post(stale, signed_headers(stale))[0] == 401  # no basic auth
        assert wait_until(lambda: set(webhook_uids(daemon.receiver)) >= set(ids), 20)
        # ... and some after they were exported: answered, not exported again.
        for event_id in ids[5:10]:
            body = bodies[event_id]
            assert daemon.post(body, hook_headers(body)) == (200, '{"status": "repeat"}')
        time.sleep(1.5)  # a few polls and batch timeouts
        got = webhook_uids(daemon.receiver)
        assert got == Counter(ids), "each signed event exported exactly once, nothing forged"
        records = {str(r.attributes["log.record.uid"]): r for r in daemon.receiver.log_records()}
        assert records["ev-0"].severity_text == "ERROR"
        assert records["ev-2"].severity_text == "WARN"
        assert records["ev-3"].event_name == "daily.no-such.type-yet"
        assert records["ev-0"].attributes["daily.room"] == "r"
        assert daemon.metric("webhook_events_refused_total", reason="signature") == 2
        assert daemon.metric("webhook_events_refused_total", reason="stale") == 1
        assert daemon.metric("webhook_events_refused_total", reason="auth") == 1
        assert daemon.metric("webhook_events_repeated_total") == 10
        assert daemon.metric("webhook_events_stored_total") == 40
        assert daemon.metric("records_exported_total", stream="webhooks") == 40
        assert wait_until(lambda: daemon.inbox_rows() == 0, 5)
        assert daemon.metric("webhook_inbox_oldest_age_seconds") == 0
        assert daemon.stop() == 0
        assert_no_secret_in(daemon.log())
        assert_no_secret_in(
            daemon.config.read_text().replace(SECRET, "").replace(BASIC_PASSWORD, "")
        )


def test_a_burst_of_1000_events_in_one_second_is_accepted_and_nothing_lost(
    tmp_path: Path,
) -> None:
    with hook_daemon(tmp_path, export={"batch_size": 500}) as (daemon, _):
        ids = [f"burst-{i}" for i in range(1000)]
        items = []
        for i, event_id in enumerate(ids):
            body = event_body(event_id, TYPES[i % len(TYPES)], room="r", timestamp=1_765_000_000)
            items.append((body, hook_headers(body)))
        began = time.perf_counter()
        statuses = asyncio.run(post_all(daemon.url, items, concurrency=64, spread=1.0))
        took = time.perf_counter() - began
        assert Counter(statuses) == Counter({200: 1000}), Counter(statuses)
        print(f"1000 events posted over 1 s, all answered 200 in {took:.2f} s")
        assert wait_until(lambda: set(webhook_uids(daemon.receiver)) >= set(ids), 30)
        assert webhook_uids(daemon.receiver) == Counter(ids)
        within_50ms = daemon.metric("webhook_accept_duration_seconds_bucket", le="0.05") / 1000
        print(f"share of accepts answered within 50 ms: {within_50ms:.3f}")
        assert daemon.stop() == 0


def test_a_backend_outage_holds_accepted_events_in_the_store(tmp_path: Path) -> None:
    grpc_port = free_port()
    receiver = OtlpReceiver(grpc_port=grpc_port, http=False, observe_grpc_compression=False)
    with hook_daemon(
        tmp_path,
        receiver=receiver,
        grpc_port=grpc_port,
        export={"timeout": "1s", "max_retry_time": "1s"},
    ) as (daemon, _):
        ids = [f"held-{i}" for i in range(300)]
        for event_id in ids:
            body = event_body(event_id, "recording.error", room="r", timestamp=1_765_000_000)
            assert daemon.post(body, hook_headers(body))[0] == 200
        # No backend: every accepted event waits on disk, in the inbox (a fresh connection
        # reads them), not only in the daemon's memory.
        time.sleep(2.0)
        assert daemon.inbox_rows() == 300
        assert daemon.metric("webhook_inbox_oldest_age_seconds") > 0
        # A restart during the outage loses none of them either.
        daemon.kill()
        daemon.start()
        assert daemon.inbox_rows() == 300
        receiver.start()
        try:
            assert wait_until(lambda: set(webhook_uids(receiver)) >= set(ids), 60), daemon.log()[
                -2000:
            ]
            assert webhook_uids(receiver) == Counter(ids)
            assert wait_until(lambda: daemon.inbox_rows() == 0, 10)
        finally:
            daemon.kill()
            receiver.stop()


def test_daily_simulator_hooks_are_verified_and_every_acknowledged_event_exported(
    tmp_path: Path,
) -> None:
    """The simulator as Daily: `POST /webhooks` verifies the URL, then its meetings' events
    are pushed, signed with the hook's secret, retried the `exponential` way."""
    sim_args = (
        "--meetings", "0", "--churn-meetings", "3", "--churn-delay", "2", "--churn-over", "3",
        "--churn-min-duration", "2", "--churn-max-duration", "4", "--churn-late-ratio", "0",
        "--webhook-tick", "100ms", "--webhook-backoff", "500ms",
    )  # fmt: skip
    with hook_daemon(tmp_path, sim_args=sim_args) as (daemon, sim):
        verified = daemon.metric("webhook_verifications_total")  # our own start-up probe
        request = urllib.request.Request(  # noqa: S310 - loopback
            sim.url + "/webhooks",
            data=json.dumps(
                {
                    "url": daemon.url,
                    "hmac": SECRET,
                    "basicAuth": f"{BASIC_USER}:{BASIC_PASSWORD}",
                    "retryType": "exponential",
                }
            ).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            assert resp.status == 200
        assert daemon.metric("webhook_verifications_total") == verified + 1

        def ended() -> list[dict[str, Any]]:
            deliveries = sim.get("/webhooks")["deliveries"]
            return [d for d in deliveries if d["type"] == "meeting.ended" and d["status"] == 200]

        assert wait_until(lambda: len(ended()) == 3, 60, 0.5), sim.get("/webhooks")
        acknowledged = {
            d["event"] for d in sim.get("/webhooks")["deliveries"] if d["status"] == 200
        }
        assert wait_until(lambda: set(webhook_uids(daemon.receiver)) >= acknowledged, 20)
        assert webhook_uids(daemon.receiver) == Counter(acknowledged)
        assert "session tracked from a pushed event" in daemon.log()
        assert daemon.stop() == 0
        assert_no_secret_in(daemon.log())


def first_read(sim: SimulatorProcess, since: int, after: float) -> float | None:
    """When the first `GET /logs` arrived at or after `after` (wall clock), if one did."""
    for entry in sim.get(f"/requests?since={since}")["requests"]:
        if entry["endpoint"] == "logs" and entry["arrived"] >= after:
            return float(entry["arrived"])
    return None


def test_meeting_started_reads_the_session_within_two_seconds(tmp_path: Path) -> None:
    # Discovery every 60 s (quick ones every 20 s): only the event can explain a read within
    # two seconds of it.
    with hook_daemon(
        tmp_path, sim_args=("--meetings", "0"), domain_overrides={"poll_interval": "60s"}
    ) as (daemon, sim):
        time.sleep(1.0)  # the first discovery is done
        delays = []
        for n in range(3):
            seen = sim.get("/requests")["next"]
            now = time.time()
            body = event_body(
                f"start-{n}", "meeting.started", meeting_id=f"hinted-{n}", room="r", start_ts=now
            )
            posted = time.time()
            assert daemon.post(body, hook_headers(body))[0] == 200

            assert wait_until(lambda s=seen, p=posted: first_read(sim, s, p) is not None, 5)
            read_at = first_read(sim, seen, posted)
            assert read_at is not None
            delays.append(read_at - posted)
        print(
            "meeting.started -> first read of the session: "
            + ", ".join(f"{d:.3f}s" for d in delays)
        )
        assert max(delays) <= 2.0
        assert len(re.findall("session tracked from a pushed event", daemon.log())) == 3


def test_the_simulator_takes_its_webhook_flags() -> None:
    from daily_otel_bridge.testing.simulator import _config_from_args, _parser

    args = _parser().parse_args(
        [
            "--webhook-timeout",
            "2s",
            "--webhook-backoff",
            "500ms",
            "--webhook-max-attempts",
            "3",
            "--webhook-failure-threshold",
            "4",
            "--webhook-tick",
            "100ms",
        ]
    )
    config = _config_from_args(args)
    assert (config.webhook_timeout, config.webhook_backoff, config.webhook_tick) == (2, 0.5, 0.1)
    assert (config.webhook_max_attempts, config.webhook_failure_threshold) == (3, 4)
    defaults = _config_from_args(_parser().parse_args([]))
    assert (defaults.webhook_backoff, defaults.webhook_failure_threshold) == (60.0, 3)
