"""Webhooks when things fail: the daemon SIGKILLed at random moments while events arrive,
an event posted to a replica that does not own its domain, PostgreSQL restarting under the
receiver. Daily's side is played the way its `exponential` retry mode behaves: an event
that got no 200 is sent again, under the same id, until it does.

Nothing that got a 200 is lost; duplicates stay within the export requests in flight at a
kill (`max_inflight_exports` x `batch_size` each); repeats within the window are not
exported again."""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.e2e.harness import wait_until
from tests.e2e.replicas import replica_rig
from tests.e2e.test_webhooks_e2e import basic_header, hook_daemon, webhook_uids
from tests.faults._support import free_port
from tests.webhook_inbox import SECRET, event_body, signed_headers

Post = Callable[[bytes, dict[str, str]], int]


class DailySender(threading.Thread):
    """Sends `count` events at about `rate` per second, each again (same id, same body,
    fresh signature) until it gets a 200, as Daily's retries would."""

    def __init__(self, post: Post, prefix: str, count: int, rate: float, auth: dict[str, str]):
        super().__init__(daemon=True)
        self.post, self.prefix, self.count, self.rate, self.auth = post, prefix, count, rate, auth
        self.accepted: list[str] = []
        self.retries = 0
        self.slowest = 0.0  # seconds, the longest answer
        self.deadline = time.monotonic() + 240

    def run(self) -> None:
        for i in range(self.count):
            event_id = f"{self.prefix}-{i}"
            body = event_body(event_id, "participant.joined", room="r", joined_at=1_765_000_000)
            while time.monotonic() < self.deadline:
                began = time.monotonic()
                status = self.post(body, {**signed_headers(body), **self.auth})
                self.slowest = max(self.slowest, time.monotonic() - began)
                if status == 200:
                    self.accepted.append(event_id)
                    break
                self.retries += 1
                time.sleep(0.05)
            time.sleep(1 / self.rate)


def url_post(url: str) -> Post:
    def post(body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    return post


def test_sigkill_at_random_moments_loses_no_event_that_got_a_200(tmp_path: Path) -> None:
    rng = random.Random(16)
    batch_size, inflight = 40, 1
    with hook_daemon(
        tmp_path, export={"batch_size": batch_size, "max_inflight_exports": inflight}
    ) as (daemon, _):
        sender = DailySender(url_post(daemon.url), "k", 800, rate=150, auth=basic_header())
        sender.start()
        kills = 0
        while sender.is_alive() and kills < 6:
            time.sleep(rng.uniform(0.4, 1.2))
            daemon.kill()
            kills += 1
            daemon.start()
        sender.join(240)
        assert not sender.is_alive()
        assert len(sender.accepted) == 800, "Daily's retries got every event in"
        want = set(sender.accepted)
        assert wait_until(lambda: set(webhook_uids(daemon.receiver)) >= want, 60)
        got = webhook_uids(daemon.receiver)
        assert set(got) == want
        duplicates = sum(got.values()) - len(got)
        print(f"{kills} kills, {sender.retries} retries by the sender, {duplicates} duplicates")
        assert kills >= 3
        assert duplicates <= kills * inflight * batch_size
        assert wait_until(lambda: daemon.inbox_rows() == 0, 10)


def test_the_owner_exports_what_another_replica_accepted_and_a_pg_restart_loses_none(
    tmp_path: Path,
) -> None:
    with replica_rig(tmp_path, domains=1, meetings=1, records=20) as rig:
        ports = {}
        for name in ("r1", "r2"):
            replica = rig.add_replica(name)
            ports[name] = free_port()
            doc = yaml.safe_load(replica.config.read_text())
            doc["webhooks"] = {"listen": f"127.0.0.1:{ports[name]}"}
            for d in doc["domains"]:
                d["webhook_secret"] = SECRET
            doc["export"]["batch_timeout"] = "200ms"
            replica.config.write_text(yaml.safe_dump(doc, sort_keys=False))
        owner, other = rig.replica("r1"), rig.replica("r2")
        owner.start()
        assert wait_until(lambda: rig.reader_of("d0") == "r1", 60), owner.log()[-2000:]
        other.start()
        post_to_other = url_post(f"http://127.0.0.1:{ports['r2']}/webhooks/d0")
        assert wait_until(lambda: post_to_other(b'{"test":"test"}', {}) == 200, 30)

        # 1. Posted to r2, which does not own d0: stored in the shared PostgreSQL, and
        # exported by r1, the owner.
        first = DailySender(post_to_other, "a", 50, rate=200, auth={})
        first.run()
        assert len(first.accepted) == 50
        assert wait_until(lambda: set(webhook_uids(rig.receiver)) >= set(first.accepted), 30)
        labels = {"domain": "d0", "stream": "webhooks"}
        assert owner.metric("daily_otel_bridge_records_exported_total", labels) == 50
        assert not other.metric("daily_otel_bridge_records_exported_total", labels)
        assert other.metric("daily_otel_bridge_webhook_events_stored_total", {"domain": "d0"}) == 50
        assert rig.reader_of("d0") == "r1"

        # 2. PostgreSQL restarts while events arrive: the receiver answers 503 while it is
        # down (nothing stored, nothing answered 200), Daily retries, nothing is lost.
        second = DailySender(post_to_other, "b", 300, rate=100, auth={})
        second.start()
        time.sleep(1.0)
        rig.pg.restart(down_for=2.0)
        second.join(240)
        assert len(second.accepted) == 300
        want = set(first.accepted) | set(second.accepted)
        assert wait_until(lambda: set(webhook_uids(rig.receiver)) >= want, 90), owner.log()[-3000:]
        got = webhook_uids(rig.receiver)
        assert set(got) == want
        print(
            f"PostgreSQL restart: {second.retries} retries, slowest answer "
            f"{second.slowest:.2f}s, {sum(got.values()) - len(got)} duplicates"
        )
        assert sum(got.values()) - len(got) <= rig.batch_size  # the one export in flight
        refused = other.metric(
            "daily_otel_bridge_webhook_events_refused_total",
            {"domain": "d0", "reason": "unavailable"},
        )
        assert second.retries == 0 or (refused or 0) >= 1
