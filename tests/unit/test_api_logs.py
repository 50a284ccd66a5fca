"""`core.api_logs`: one /logs/api entry -> one LogRecord (routes, severity, bodies only when
asked and then scrubbed), and the cursor by record id, driven against a model of Daily's list
in every order and reading of `starting_after` / `ending_before`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.api_logs import (
    EVENT_NAME,
    MAX_PAGES,
    Key,
    Order,
    Position,
    Reading,
    Walk,
    advance,
    created_at_ns,
    encode_entry,
    key_of,
    parse_entry,
    room_of,
    route_of,
    severity_of_status,
    start_walk,
    status_class,
    take_page,
)
from daily_otel_bridge.core.encoding import decode_any_value, decode_attributes
from daily_otel_bridge.core.mapping import MalformedRecord

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyIjoiUExBTlRFRCJ9.c2lnLVBMQU5URUQ"
S = 1_000_000_000
T0 = 1_774_000_000


def iso(seconds: float) -> str:
    whole = int(seconds)
    from datetime import UTC, datetime

    text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{round((seconds - whole) * 1000):03d}Z"


def entry(n: int, seconds: float | None = None, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": f"log-{n:05d}",
        "userId": "u-1",
        "domainId": "d-1",
        "source": "api",
        "ip": "203.0.113.9",
        "method": "POST",
        "url": "/v1/rooms/support-7",
        "status": "200",
        "createdAt": iso(T0 + (n if seconds is None else seconds)),
        "request": json.dumps({"privacy": "private"}),
        "response": json.dumps({"name": "support-7"}),
    }
    raw.update(changes)
    return raw


# -- routes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "source", "route"),
    [
        ("/rooms", "api", "/rooms"),
        ("/v1/rooms", "api", "/rooms"),
        ("https://api.daily.co/v1/rooms/support-7", "api", "/rooms/{name}"),
        ("/v1/rooms/Support_7?x=1", "api", "/rooms/{name}"),
        ("/v1/rooms/rooms", "api", "/rooms/{name}"),
        ("/v1/rooms/support-7/presence", "api", "/rooms/{name}/presence"),
        ("/v1/rooms/r1/recordings/start", "api", "/rooms/{name}/recordings/start"),
        ("/v1/rooms/r1/set-session-data", "api", "/rooms/{name}/set-session-data"),
        (f"/v1/meeting-tokens/{JWT}", "api", "/meeting-tokens/{token}"),
        ("/v1/meeting-tokens", "api", "/meeting-tokens"),
        ("/v1/meetings/16e9701a-93e0-4933-83c9-223e7c40d552", "api", "/meetings/{id}"),
        ("/v1/meetings/16e9701a/participants", "api", "/meetings/{id}/participants"),
        ("/v1/recordings/abc123/access-link", "api", "/recordings/{id}/access-link"),
        ("/v1/webhooks/9f2c", "api", "/webhooks/{id}"),
        ("/v1/presence", "api", "/presence"),
        ("/v1/logs/api", "api", "/logs/api"),
        ("/v1/batch/rooms", "api", "/batch/rooms"),
        ("/v1/dialin/pinlessCallUpdate", "api", "/dialin/pinlessCallUpdate"),
        ("/v1/some-new-thing/AbC9", "api", "/some-new-thing/{id}"),
        ("/v1/a/b/c/d/e/f/g/h", "api", "/a/b/c/d/e/f/..."),
        ("//v1//rooms//x//", "api", "/rooms/{name}"),
        ("", "api", "/"),
        ("/v1/rooms/%65vil", "api", "/rooms/{name}"),
        ("https://hooks.example.com/daily/hook?secret=PLANTED", "webhook", "/daily/hook"),
        ("https://hooks.example.com/h/7f3a9c1e/events", "webhook", "/h/{id}/events"),
        ("https://hooks.example.com/rooms/support-7", "webhook", "/rooms/{id}"),
        ("https://hooks.example.com/rooms/support", "webhook", "/rooms/support"),
        ("https://hooks.example.com", "webhook", "/"),
    ],
)
def test_routes(url: str, source: str, route: str) -> None:
    assert route_of(url, source=source) == route


def test_room_of() -> None:
    assert room_of("/v1/rooms/support-7/presence") == "support-7"
    assert room_of("https://api.daily.co/v1/rooms/a%20b") == "a b"
    assert room_of("/v1/rooms") is None
    assert room_of("/v1/meetings/x") is None


@pytest.mark.parametrize(
    ("status", "severity", "klass"),
    [
        (200, "INFO", "2xx"),
        (204, "INFO", "2xx"),
        (301, "INFO", "3xx"),
        (400, "WARN", "4xx"),
        (429, "WARN", "4xx"),
        (499, "WARN", "4xx"),
        (500, "ERROR", "5xx"),
        (503, "ERROR", "5xx"),
        (None, "INFO", "other"),
    ],
)
def test_status(status: int | None, severity: str, klass: str) -> None:
    assert severity_of_status(status) == severity
    assert status_class(status) == klass


# -- one entry -------------------------------------------------------------------------------


def decoded(data: bytes) -> tuple[LogRecord, dict[str, object]]:
    record = LogRecord.FromString(data)
    return record, decode_attributes(record.attributes)


def test_mapping() -> None:
    parsed = parse_entry(entry(1, status="404", method="get", url=f"/v1/meeting-tokens/{JWT}"))
    data = encode_entry(parsed, observed_ns=7, bodies=False)
    record, attributes = decoded(data)
    assert record.event_name == EVENT_NAME
    assert record.time_unix_nano == (T0 + 1) * S
    assert record.observed_time_unix_nano == 7
    assert (record.severity_number, record.severity_text) == (13, "WARN")
    assert decode_any_value(record.body) == "GET /meeting-tokens/{token} 404"
    assert attributes == {
        "daily.api.source": "api",
        "http.request.method": "GET",
        "http.route": "/meeting-tokens/{token}",
        "http.response.status_code": 404,
        "client.address": "203.0.113.9",
        "log.record.uid": "log-00001",
    }
    assert b"PLANTED" not in data  # the token in the URL never leaves
    assert b"privacy" not in data  # no body without api_logs_bodies


def test_bodies_only_when_asked_and_scrubbed() -> None:
    raw = entry(
        2,
        status=500,
        request=json.dumps({"properties": {"room_name": "r"}, "token": JWT}),
        response=f'{{"token":"{JWT}","error":"server-error"',  # cut short, not JSON
    )
    record, attributes = decoded(encode_entry(parse_entry(raw), observed_ns=1, bodies=True))
    assert record.severity_text == "ERROR"
    request = attributes["daily.api.request_body"]
    response = attributes["daily.api.response_body"]
    assert isinstance(request, str)
    assert isinstance(response, str)
    assert json.loads(request) == {"properties": {"room_name": "r"}, "token": "***"}
    assert "server-error" in response
    assert "PLANTED" not in request + response
    assert JWT not in record.SerializeToString().decode("utf-8", "replace")


def test_webhook_entry() -> None:
    raw = entry(
        3,
        source="webhook",
        status="502",
        url="https://bob:pw@hooks.example.com/daily/hook?secret=PLANTED",
    )
    parsed = parse_entry(raw)
    assert parsed.delivery_failed
    _, attributes = decoded(encode_entry(parsed, observed_ns=1, bodies=False))
    assert attributes["http.route"] == "/daily/hook"
    assert attributes["server.address"] == "hooks.example.com"
    assert attributes["daily.api.source"] == "webhook"
    assert not parse_entry(entry(4, source="webhook", status=200)).delivery_failed
    assert parse_entry(entry(4, source="webhook", status=None)).delivery_failed
    assert not parse_entry(entry(4, source="api", status=500)).delivery_failed


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"status": 201}, lambda e: e.status == 201),
        ({"status": " 201 "}, lambda e: e.status == 201),
        ({"status": None}, lambda e: e.status is None),
        ({"method": "purge"}, lambda e: e.method == "_OTHER"),
        ({"method": None}, lambda e: e.method is None),
        ({"id": 12345}, lambda e: e.id == "12345"),
        ({"source": None}, lambda e: e.source == "api"),
        ({"createdAt": T0 + 5}, lambda e: e.time_ns == (T0 + 5) * S),
        ({"createdAt": (T0 + 5) * 1000}, lambda e: e.time_ns == (T0 + 5) * S),
        ({"createdAt": "2026-03-20T10:00:00+01:00"}, lambda e: e.time_ns > 0),
        ({"extra": [1, 2]}, lambda e: e.id == "log-00009"),
    ],
)
def test_tolerated(changes: dict[str, Any], check: Callable[[Any], bool]) -> None:
    assert check(parse_entry(entry(9, **changes)))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "entry is list, expected an object"),
        (entry(1, id=None), "id is missing or not a non-empty string"),
        (entry(1, id=""), "id is missing or not a non-empty string"),
        (entry(1, createdAt=None), "createdAt is missing"),
        (entry(1, createdAt="yesterday"), "createdAt: unparsable time 'yesterday'"),
        (entry(1, createdAt=True), "createdAt is bool, expected a timestamp"),
        (entry(1, createdAt=-1), "createdAt is out of range"),
        (entry(1, status="teapot"), "status is not an HTTP status code"),
        (entry(1, status=999), "status is not an HTTP status code"),
        (entry(1, status=True), "status is not an HTTP status code"),
        (entry(1, url=["/rooms"]), "url is list, expected a string"),
        (entry(1, ip=7), "ip is int, expected a string"),
    ],
)
def test_refused(raw: object, reason: str) -> None:
    with pytest.raises(MalformedRecord) as info:
        parse_entry(raw)
    assert str(info.value) == reason


def test_created_at_forms() -> None:
    assert created_at_ns("2026-03-23T16:32:55.473000000Z") % S == 473_000_000
    assert created_at_ns(1.5) == 1_500_000_000


# -- the cursor, against a model of Daily's list ---------------------------------------------


@dataclass
class FakeList:
    """Daily's /logs/api as one of the four possible servers: `order` of the list, `reading`
    of `starting_after`; a page is the first `limit` entries the server selects, in its order."""

    order: Order
    reading: Reading
    entries: list[dict[str, Any]] = field(default_factory=list)
    overlap_pages: bool = False  # each page repeats the previous page's last entry
    requests: list[dict[str, str]] = field(default_factory=list)

    def listed(self) -> list[dict[str, Any]]:
        chrono = sorted(self.entries, key=lambda e: (created_at_ns(e["createdAt"]), e["id"]))
        return chrono if self.order is Order.ASC else chrono[::-1]

    def answer(self, params: dict[str, str]) -> list[dict[str, Any]]:
        self.requests.append(dict(params))
        limit = int(params["limit"])
        listed = self.listed()
        ids = [e["id"] for e in listed]
        chrono_ids = [e["id"] for e in reversed(listed)] if self.order is Order.DESC else ids
        for name in ("starting_after", "ending_before"):
            if name not in params:
                continue
            cursor = params[name]
            if cursor not in ids:
                return []
            newer = name == "starting_after"  # TIME reading
            if self.reading is Reading.LIST:
                at = ids.index(cursor)
                if name == "starting_after":
                    start = at if self.overlap_pages else at + 1
                    return listed[start : start + limit]
                # Stripe: the page just before the cursor, adjacent to it
                before = listed[:at]
                return before[-limit:]
            at = chrono_ids.index(cursor)
            chosen = set(chrono_ids[at + 1 :] if newer else chrono_ids[:at])
            if self.overlap_pages:
                chosen.add(cursor)
            # the server filters, then serves its list in its own order: first `limit`
            return [e for e in listed if e["id"] in chosen][:limit]
        return listed[:limit]


def run_walk(
    server: FakeList,
    position: Position,
    *,
    limit: int = 10,
    overlap: int = 120 * S,
    start: int = 0,
) -> tuple[Walk, list[dict[str, Any]]]:
    walk = start_walk(position, source="api", limit=limit, overlap_ns=overlap, start_ns=start)
    delivered: list[dict[str, Any]] = []
    for _ in range(10_000):
        result = take_page(walk, server.answer(dict(walk.params)))
        delivered += result.new
        walk = result.walk
        if walk.done:
            return walk, delivered
    raise AssertionError("the walk never ended")


def commit(walk: Walk, delivered: Sequence[dict[str, Any]], overlap: int = 120 * S) -> Position:
    keys = [k for k in (key_of(e) for e in delivered) if k is not None]
    return advance(walk, keys, overlap_ns=overlap)


SERVERS = [
    pytest.param(order, reading, overlap, id=f"{order.value}-{reading.value}{'-overlap' * overlap}")
    for order in Order
    for reading in Reading
    for overlap in (False, True)
]


def ids(entries: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(e["id"] for e in entries)


@pytest.mark.parametrize(("order", "reading", "overlap"), SERVERS)
def test_every_entry_once_across_walks(order: Order, reading: Reading, overlap: bool) -> None:
    server = FakeList(order, reading, [entry(n) for n in range(45)], overlap_pages=overlap)
    walk, delivered = run_walk(server, Position())
    assert walk.complete, walk.trouble
    assert ids(delivered) == ids(server.entries)
    position = commit(walk, delivered)
    assert position.order is order

    server.entries += [entry(n) for n in range(45, 68)]
    walk, delivered = run_walk(server, position)
    assert walk.complete, walk.trouble
    assert ids(delivered) == [f"log-{n:05d}" for n in range(45, 68)]
    position = commit(walk, delivered)

    walk, delivered = run_walk(server, position)
    assert walk.complete
    assert delivered == []
    assert commit(walk, delivered).newest_ns == position.newest_ns


@pytest.mark.parametrize(("order", "reading", "overlap"), SERVERS)
def test_a_late_entry_inside_the_overlap_is_delivered(
    order: Order, reading: Reading, overlap: bool
) -> None:
    server = FakeList(order, reading, [entry(n) for n in range(30)], overlap_pages=overlap)
    walk, delivered = run_walk(server, Position())
    position = commit(walk, delivered)
    late = entry(99, seconds=20.5)  # older than the newest delivered, within the overlap
    server.entries.append(late)
    walk, delivered = run_walk(server, position)
    assert walk.complete
    assert ids(delivered) == ["log-00099"]


@pytest.mark.parametrize(("order", "reading"), [(o, r) for o in Order for r in Reading])
def test_what_was_learned_is_kept_and_costs_nothing_later(order: Order, reading: Reading) -> None:
    server = FakeList(order, reading, [entry(n) for n in range(25)])
    walk, delivered = run_walk(server, Position())
    position = commit(walk, delivered)
    if order is Order.DESC:
        assert position.reading is reading
    server.entries += [entry(n) for n in range(25, 50)]
    server.requests.clear()
    walk, delivered = run_walk(server, position)
    assert len(delivered) == 25
    # DESC: head, two more pages (down to the committed position): no probing any more.
    # ASC: from the overlap's oldest entry on to an empty page.
    used = {name for r in server.requests for name in r if name.endswith(("after", "before"))}
    assert len(used) <= 1, server.requests


def test_first_walk_starts_at_start_ns() -> None:
    server = FakeList(Order.DESC, Reading.LIST, [entry(n) for n in range(40)])
    walk, delivered = run_walk(server, Position(), start=(T0 + 30) * S)
    assert walk.complete
    assert ids(delivered) == [f"log-{n:05d}" for n in range(30, 40)]


@pytest.mark.parametrize("order", list(Order))
def test_an_empty_list(order: Order) -> None:
    server = FakeList(order, Reading.LIST)
    walk, delivered = run_walk(server, Position())
    assert walk.complete
    assert delivered == []
    assert len(server.requests) == 1
    assert commit(walk, delivered) == Position()


def test_one_entry_then_an_empty_answer_asks_the_other_parameter_once() -> None:
    server = FakeList(Order.DESC, Reading.TIME, [entry(1)])
    walk, delivered = run_walk(server, Position())
    assert walk.complete
    assert ids(delivered) == ["log-00001"]
    # head; starting_after (TIME: newer, empty: ambiguous); ending_before (empty: the end)
    assert [sorted(r) for r in server.requests] == [
        ["limit", "source"],
        ["limit", "source", "starting_after"],
        ["ending_before", "limit", "source"],
    ]


def test_repeated_ids_in_a_page_are_delivered_once() -> None:
    page = [entry(5), entry(5), entry(4), {"id": None}, "junk", entry(3)]
    walk = start_walk(Position(), source="api", limit=10, overlap_ns=0, start_ns=0)
    result = take_page(walk, page)
    assert ids(result.new) == ["log-00003", "log-00004", "log-00005"]


def test_entries_without_a_time_are_delivered_and_never_end_the_walk() -> None:
    page = [entry(5), entry(4, createdAt="garbage"), entry(3)]
    walk = start_walk(Position(), source="api", limit=3, overlap_ns=0, start_ns=(T0 + 4) * S)
    result = take_page(walk, page)
    # 3 is older than the start: not new, and it ends the (DESC) walk
    assert ids(result.new) == ["log-00004", "log-00005"]
    assert result.walk.done


def test_a_page_in_reverse_order_stops_the_walk_and_moves_nothing() -> None:
    walk = start_walk(Position(), source="api", limit=3, overlap_ns=0, start_ns=0)
    result = take_page(walk, [entry(9), entry(8), entry(7)])
    assert result.walk.params == {"source": "api", "limit": "3", "starting_after": "log-00007"}
    result = take_page(result.walk, [entry(1), entry(2), entry(3)])  # older, but ascending
    assert result.walk.done
    assert not result.walk.complete
    assert result.walk.trouble == "a /logs/api page came in reverse order"
    assert ids(result.new) == ["log-00001", "log-00002", "log-00003"]
    position = advance(result.walk, [Key("log-00009", (T0 + 9) * S)], overlap_ns=0)
    assert position.newest_ns is None
    assert position.order is Order.DESC


def test_a_server_paging_both_ways_stops_the_walk() -> None:
    walk = start_walk(Position(), source="api", limit=2, overlap_ns=0, start_ns=0)
    result = take_page(walk, [entry(9), entry(8)])
    result = take_page(result.walk, [entry(9), entry(8)])  # wrong way: flip
    assert result.walk.params["ending_before"] == "log-00008"
    result = take_page(result.walk, [entry(9)])  # wrong way again
    assert result.walk.done
    assert not result.walk.complete


def test_incomplete_walks_move_nothing_but_what_they_learned() -> None:
    walk = start_walk(Position(), source="api", limit=2, overlap_ns=0, start_ns=0)
    result = take_page(walk, [entry(9), entry(8)])
    result = take_page(result.walk, [entry(5), entry(6)])  # ascending page on a DESC walk
    position = advance(result.walk, [Key("log-00009", 1)], overlap_ns=0)
    assert position == Position(order=Order.DESC, reading=Reading.LIST)


def test_a_walk_is_bounded() -> None:
    def endless(n: int) -> list[dict[str, Any]]:
        return [entry(-2 * n), entry(-2 * n - 1)]

    walk = start_walk(Position(), source="api", limit=2, overlap_ns=0, start_ns=0)
    result = take_page(walk, [entry(10**6), entry(10**6 - 1)])
    for n in range(MAX_PAGES + 5):
        if result.walk.done:
            break
        result = take_page(result.walk, endless(n + 1))
    assert result.walk.done
    assert result.walk.trouble == "too many pages in one walk"
    assert not result.walk.complete


def test_the_overlap_window_forgets_old_ids() -> None:
    server = FakeList(Order.DESC, Reading.LIST, [entry(n) for n in range(0, 600, 10)])
    walk, delivered = run_walk(server, Position())
    position = commit(walk, delivered, overlap=60 * S)
    assert position.newest_ns == (T0 + 590) * S
    assert sorted(position.seen) == [f"log-{n:05d}" for n in range(530, 600, 10)]


def test_take_page_after_the_end_is_a_bug() -> None:
    walk = start_walk(Position(), source="api", limit=2, overlap_ns=0, start_ns=0)
    result = take_page(walk, [])
    with pytest.raises(ValueError, match="the walk is over"):
        take_page(result.walk, [])


@pytest.mark.parametrize(("order", "reading", "overlap"), SERVERS)
@pytest.mark.parametrize("seed", range(6))
def test_random_bursts_every_entry_exactly_once(
    order: Order, reading: Reading, overlap: bool, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    server = FakeList(order, reading, overlap_pages=overlap)
    position = Position()
    delivered_all: list[str] = []
    n = 0
    for _ in range(8):
        for _ in range(rng.choice([0, 1, 3, 9, 10, 11, 37])):
            # mostly in order, some late by up to a minute (inside the 2 min overlap)
            late = rng.random() < 0.2
            server.entries.append(entry(n, seconds=n - (rng.uniform(0, 60) if late else 0)))
            n += 1
        walk, delivered = run_walk(server, position, limit=rng.choice([2, 5, 10]))
        assert walk.complete, walk.trouble
        delivered_all += [e["id"] for e in delivered]
        position = commit(walk, delivered)
    assert sorted(delivered_all) == ids(server.entries)  # none lost, none twice


def test_a_crash_before_the_commit_delivers_again_with_the_same_uids() -> None:
    server = FakeList(Order.DESC, Reading.LIST, [entry(n) for n in range(12)])
    _, first = run_walk(server, Position())
    # no commit (the backend never acknowledged, or the process died)
    _, again = run_walk(server, Position())
    assert ids(again) == ids(first)


# -- the counters (`instruments.BridgeMetrics.api_log_entry`) ---------------------------------


def test_counters_of_entries() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from daily_otel_bridge.instruments import BridgeMetrics

    metrics = BridgeMetrics()
    metrics.init_domain("acme", ["logs"], "grpc")
    for raw in (
        entry(1, status=404, url="/v1/rooms/a"),
        entry(2, status=404, url="/v1/rooms/b"),
        entry(3, status=200, url="/v1/meetings"),
        entry(4, source="webhook", status=500, url="https://h.example.com/x"),
        entry(5, source="webhook", status=None),
        entry(6, source="webhook", status=204),
    ):
        metrics.api_log_entry("acme", parse_entry(raw))
    text = generate_latest(metrics.registry).decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.endswith("_total") and ("route" in s.labels or "webhook" in s.name)
    }
    requests = "daily_otel_bridge_domain_api_requests_total"
    failed = "daily_otel_bridge_webhook_deliveries_failed_total"
    assert (
        found[(requests, (("domain", "acme"), ("route", "/rooms/{name}"), ("status_class", "4xx")))]
        == 2
    )
    assert (
        found[(requests, (("domain", "acme"), ("route", "/meetings"), ("status_class", "2xx")))]
        == 1
    )
    assert found[(failed, (("domain", "acme"), ("status_class", "5xx")))] == 1
    assert found[(failed, (("domain", "acme"), ("status_class", "other")))] == 1
    assert found[(failed, (("domain", "acme"), ("status_class", "4xx")))] == 0  # from the start
