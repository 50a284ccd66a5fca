"""The domain's REST API requests and webhook deliveries (`GET /logs/api`) -> OTel
LogRecords, and the cursor that walks the list by record id. Pure.

What Daily documents (https://docs.daily.co/reference/rest-api/logs/list-api-logs): each
entry has `id`, `userId`, `domainId`, `source` (`api` | `webhook`), `ip`, `method`, `url`,
`status`, `createdAt`, `request` and `response` (JSON text); the query takes `source`
(default `api`, so the two sources are two lists), `url`, `limit` (default 20) and
`starting_after` / `ending_before`, "given the log ID, will return all records after /
before that ID". Not documented: the list's default order, and whether "after" means after
in the list's order (Stripe's convention, and the one the bridge's `/meetings` paging relies
on: Daily lists meetings and rooms newest first,
https://docs.daily.co/reference/rest-api/rooms/list-rooms) or after in time (newer). The
cursor below is right on both readings and in both orders (see `Walk`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from daily_otel_bridge.core.log_records import AttributeValue, encode_record
from daily_otel_bridge.core.mapping import MalformedRecord, parse_time_ns
from daily_otel_bridge.core.scrub import scrub_body, scrub_text

EVENT_NAME: Final = "daily.api.request"
SOURCES: Final = ("api", "webhook")

# OpenTelemetry semantic conventions where the meaning is theirs (HTTP, client, server).
ATTR_METHOD: Final = "http.request.method"
ATTR_ROUTE: Final = "http.route"
ATTR_STATUS: Final = "http.response.status_code"
ATTR_CLIENT_ADDRESS: Final = "client.address"
ATTR_SERVER_ADDRESS: Final = "server.address"
ATTR_SOURCE: Final = "daily.api.source"
ATTR_REQUEST_BODY: Final = "daily.api.request_body"
ATTR_RESPONSE_BODY: Final = "daily.api.response_body"

_NS: Final = 1_000_000_000
_HTTP_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


# -- routes -----------------------------------------------------------------------------------
#
# `http.route` and the metric label must stay low-cardinality, so every part of a path that
# names one thing (a room, a meeting, a token) becomes a placeholder:
#
# 1. The path alone: scheme, host, query string and fragment go (a query can hold a token);
#    `/v1` in front goes (Daily's API version); empty segments go.
# 2. The segment after a top-level Daily collection is that collection's placeholder:
#    `/rooms/{name}`, `/meetings/{id}`, `/meeting-tokens/{token}`, `/recordings/{id}`, ...
#    (`_COLLECTIONS`); what follows keeps its words (`/rooms/{name}/recordings/start`).
# 3. Any other segment stays only if it looks like a word (letters, `-` and `_`, at most
#    32); one with a digit, a dot or anything else is `{id}`.
# 4. At most six segments; the rest is `/...`.
#
# Webhook deliveries (source `webhook`) go to the customer's server: the route is made by rules
# 1, 3 and 4 from its path, and `server.address` names the host.

_COLLECTIONS: Final[Mapping[str, str]] = {
    "rooms": "{name}",
    "meetings": "{id}",
    "meeting-tokens": "{token}",
    "recordings": "{id}",
    "transcript": "{id}",
    "webhooks": "{id}",
    "phone-numbers": "{id}",
    "purchased-phone-numbers": "{id}",
}
_WORD: Final = re.compile(r"^[A-Za-z][A-Za-z_-]{0,31}$")
_MAX_SEGMENTS: Final = 6


def _path_of(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return parts.path if (parts.scheme or parts.netloc) else url.split("?")[0].split("#")[0]


def route_of(url: str, *, source: str = "api") -> str:
    """The low-cardinality route of a logged URL (rules above)."""
    segments = [unquote(s) for s in _path_of(url).split("/") if s]
    if source != "webhook" and segments and segments[0].lower() == "v1":
        segments = segments[1:]
    out: list[str] = []
    placeholder: str | None = None
    for segment in segments:
        if len(out) == _MAX_SEGMENTS:
            out.append("...")
            break
        if placeholder is not None:
            out.append(placeholder)
            placeholder = None
            continue
        if _WORD.match(segment):
            if source != "webhook" and not out:
                placeholder = _COLLECTIONS.get(segment)
            out.append(segment)
        else:
            out.append("{id}")
    return "/" + "/".join(out)


def room_of(url: str) -> str | None:
    """The room a Daily API URL names (`/rooms/<name>...`), or None."""
    segments = [unquote(s) for s in _path_of(url).split("/") if s]
    if segments and segments[0].lower() == "v1":
        segments = segments[1:]
    if len(segments) >= 2 and segments[0] == "rooms":
        return segments[1]
    return None


def status_class(status: int | None) -> str:
    """`2xx`..`5xx`, or `other` (no status, or outside 100-599): a metric label."""
    if status is None or not 100 <= status <= 599:
        return "other"
    return f"{status // 100}xx"


def severity_of_status(status: int | None) -> str:
    if status is not None and 500 <= status <= 599:
        return "ERROR"
    if status is not None and 400 <= status <= 499:
        return "WARN"
    return "INFO"


# -- one entry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiLogEntry:
    """One `/logs/api` entry, checked."""

    id: str
    time_ns: int
    source: str  # `api`, `webhook`, or what Daily sent (kept, capped)
    method: str | None
    url: str
    status: int | None
    ip: str | None
    request: object
    response: object

    @property
    def route(self) -> str:
        return route_of(self.url, source=self.source)

    @property
    def delivery_failed(self) -> bool:
        """A webhook delivery Daily's server did not get a 2xx for."""
        return self.source == "webhook" and not (
            self.status is not None and 200 <= self.status <= 299
        )


def created_at_ns(value: object) -> int:
    """`createdAt` -> Unix ns: ISO-8601 text (what Daily documents), or a number of seconds
    or milliseconds since the epoch (told apart by size), in case Daily sends one."""
    if isinstance(value, bool):
        raise MalformedRecord("createdAt is bool, expected a timestamp")
    if isinstance(value, int | float):
        if not 0 <= value < 1e14:
            raise MalformedRecord("createdAt is out of range")
        return int(value * 1_000_000) if value >= 1e11 else int(value * _NS)
    if value is None:
        raise MalformedRecord("createdAt is missing")
    try:
        return parse_time_ns(value)
    except MalformedRecord as exc:
        raise MalformedRecord(f"createdAt: {exc}") from None


def _status(value: object) -> int | None:
    # Daily documents it as a string; an integer is as good.
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 3:
        number = int(value.strip())
    else:
        raise MalformedRecord("status is not an HTTP status code")
    if not 100 <= number <= 599:
        raise MalformedRecord("status is not an HTTP status code")
    return number


def _optional_text(entry: Mapping[str, Any], key: str, cap: int) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedRecord(f"{key} is {type(value).__name__}, expected a string")
    return value[:cap]


def parse_entry(raw: object) -> ApiLogEntry:
    """Check one entry; MalformedRecord (naming fields, never quoting values) otherwise."""
    if not isinstance(raw, dict):
        raise MalformedRecord(f"entry is {type(raw).__name__}, expected an object")
    entry_id = raw.get("id")
    if isinstance(entry_id, int) and not isinstance(entry_id, bool):
        entry_id = str(entry_id)
    if not isinstance(entry_id, str) or not entry_id:
        raise MalformedRecord("id is missing or not a non-empty string")
    time_ns = created_at_ns(raw.get("createdAt"))
    source = _optional_text(raw, "source", 32) or "api"
    method = _optional_text(raw, "method", 16)
    if method is not None:
        method = method.upper()
        # An unknown method is `_OTHER`, as the HTTP semantic conventions say.
        method = method if method in _HTTP_METHODS else "_OTHER"
    return ApiLogEntry(
        id=entry_id,
        time_ns=time_ns,
        source=source,
        method=method,
        url=_optional_text(raw, "url", 2048) or "",
        status=_status(raw.get("status")),
        ip=_optional_text(raw, "ip", 64),
        request=raw.get("request"),
        response=raw.get("response"),
    )


def _server_address(url: str) -> str | None:
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host or None


def entry_attributes(entry: ApiLogEntry, *, bodies: bool) -> list[tuple[str, AttributeValue]]:
    attributes: list[tuple[str, AttributeValue]] = [
        (ATTR_SOURCE, entry.source),
        (ATTR_METHOD, entry.method),
        (ATTR_ROUTE, entry.route),
        (ATTR_STATUS, entry.status),
        (ATTR_CLIENT_ADDRESS, entry.ip),
    ]
    if entry.source == "webhook":
        attributes.append((ATTR_SERVER_ADDRESS, _server_address(entry.url)))
    if bodies:
        attributes.append((ATTR_REQUEST_BODY, scrub_body(entry.request)))
        attributes.append((ATTR_RESPONSE_BODY, scrub_body(entry.response)))
    return attributes


def entry_body(entry: ApiLogEntry) -> str:
    """`POST /rooms/{name} 400`: what a person reads first (the route, never the raw URL)."""
    parts = [entry.method or "", entry.route, str(entry.status) if entry.status else ""]
    return scrub_text(" ".join(p for p in parts if p))


def encode_entry(entry: ApiLogEntry, *, observed_ns: int, bodies: bool) -> bytes:
    """The entry's LogRecord (`log.record.uid` = Daily's log id): bodies only with
    `bodies` (the domain's `api_logs_bodies`), and then scrubbed."""
    return encode_record(
        time_ns=entry.time_ns,
        observed_ns=observed_ns,
        severity=severity_of_status(entry.status),
        event_name=EVENT_NAME,
        body=entry_body(entry),
        attributes=entry_attributes(entry, bodies=bodies),
        uid=entry.id,
    )


# -- the cursor -----------------------------------------------------------------------------
#
# A list has an order (newest first, DESC, like every Daily list documented; or oldest first,
# ASC) and the two parameters have a meaning (LIST: `starting_after` walks on in the list's
# order, Stripe's convention; TIME: `starting_after` walks towards newer entries). Three
# facts make one walk right in all four cases:
#
# * On an ASC list both readings agree: `starting_after` = newer = further along the list.
# * A page always holds the entries adjacent to the cursor in the direction the server walks
#   its own list, so walking *along* the list's order never jumps over an entry; walking
#   against it may (a server may answer "newer than X" with the newest page of all).
# * Which parameter walks along the list shows in the answer: entries on the wrong side of
#   the cursor (newer on a DESC walk), or only entries the walk has, mean the other one.
#
# So: DESC walks from the head (no cursor: the newest entries) along the list, down to the
# committed position (an entry older than `newest - overlap`, or the end of the list), with
# `starting_after` until an answer shows that `ending_before` is the one (then remembered).
# ASC walks from the oldest entry of the overlap window with `starting_after` to the end.
# The first walk of a domain learns the order from the head page. Every entry is delivered
# once per walk (de-duplicated by id), an entry already committed is never delivered again
# (`Position.seen`, kept for `overlap` behind the newest), and the position moves only when
# a walk ended where it should (`Walk.complete`).


class Order(Enum):
    DESC = "desc"  # newest first
    ASC = "asc"


class Reading(Enum):
    LIST = "list"  # `starting_after` walks on in the list's order
    TIME = "time"  # `starting_after` walks towards newer entries


@dataclass(frozen=True, slots=True)
class Key:
    """What the cursor needs of an entry: its id and its time (None: unreadable)."""

    id: str
    time_ns: int | None


def key_of(raw: object) -> Key | None:
    """The cursor's view of a raw entry; None for one without an id (it cannot be placed
    or de-duplicated: the caller dead-letters it)."""
    if not isinstance(raw, dict):
        return None
    entry_id = raw.get("id")
    if isinstance(entry_id, int) and not isinstance(entry_id, bool):
        entry_id = str(entry_id)
    if not isinstance(entry_id, str) or not entry_id:
        return None
    try:
        time_ns: int | None = created_at_ns(raw.get("createdAt"))
    except MalformedRecord:
        time_ns = None
    return Key(entry_id, time_ns)


@dataclass(frozen=True, slots=True)
class Position:
    """The committed position of one list (a domain's `api` or `webhook` source)."""

    newest_ns: int | None = None  # the newest `createdAt` delivered
    seen: Mapping[str, int] = field(default_factory=dict)  # id -> createdAt, overlap window
    order: Order | None = None  # learned
    reading: Reading | None = None  # learned (it matters on a DESC list only)
    # Oldest first: the newest entry known to be older than the overlap window, where the
    # next walk starts (so it meets a late entry inserted anywhere inside the window).
    anchor: Key | None = None


@dataclass(frozen=True, slots=True)
class Walk:
    """One walk over the list, page by page (`start_walk`, then `take_page` per answer)."""

    position: Position
    floor_ns: int  # entries older than this are not new
    limit: int
    order: Order | None
    reading: Reading | None
    params: Mapping[str, str]  # the request to make next
    taken: frozenset[str] = frozenset()  # ids delivered by this walk
    cursor: Key | None = None  # the entry the pending request is relative to
    tried_other: bool = False  # an empty answer was checked with the other parameter
    flips: int = 0
    pages: int = 0
    below: Key | None = None  # the newest entry met that is older than the window
    done: bool = False
    complete: bool = False  # ended where it should: the position may move
    trouble: str | None = None  # why it ended early (for a log line)


@dataclass(frozen=True, slots=True)
class PageResult:
    walk: Walk
    new: list[Any]  # raw entries to deliver, in the page's order


# One walk's pages at most (a first walk of a long list, or a list that never ends).
MAX_PAGES: Final = 1000


def start_walk(
    position: Position, *, source: str, limit: int, overlap_ns: int, start_ns: int
) -> Walk:
    """The first request of a walk. `start_ns` bounds the first walk of a list (now minus
    `initial_lookback`); later walks go down to `newest - overlap_ns`, Daily's clock (the
    entries' `createdAt`), never the host's."""
    floor = start_ns if position.newest_ns is None else position.newest_ns - overlap_ns
    base = {"source": source, "limit": str(limit)}
    cursor: Key | None = None
    if position.order is Order.ASC:
        # From just below the overlap window: a late entry inserted anywhere in it is met
        # (and the window's own entries are dropped as seen). Without an anchor (no entry
        # older than the window met yet: a young list), from the head, the oldest entry:
        # starting at the window's oldest entry would miss one inserted before it.
        cursor = position.anchor
    params = base if cursor is None else {**base, "starting_after": cursor.id}
    return Walk(
        position=position,
        floor_ns=floor,
        limit=limit,
        order=position.order,
        reading=position.reading,
        params=params,
        cursor=cursor,
    )


def _order_of(keys: Sequence[Key]) -> Order | None:
    times = [k.time_ns for k in keys if k.time_ns is not None]
    if len(times) < 2 or times[0] == times[-1]:
        return None
    return Order.DESC if times[0] > times[-1] else Order.ASC


def _along(order: Order, reading: Reading) -> str:
    """The parameter that walks on along the list's order."""
    if order is Order.ASC or reading is Reading.LIST:
        return "starting_after"
    return "ending_before"


def _other(name: str) -> str:
    return "ending_before" if name == "starting_after" else "starting_after"


def _reading_for(order: Order, name: str) -> Reading:
    # On a DESC list, `starting_after` walking on means LIST, `ending_before` means TIME.
    if order is Order.ASC:
        return Reading.LIST
    return Reading.LIST if name == "starting_after" else Reading.TIME


def _is_new(key: Key, walk: Walk, taken: set[str]) -> bool:
    if key.id in taken or key.id in walk.position.seen:
        return False
    return key.time_ns is None or key.time_ns >= walk.floor_ns


def _wrong_way(
    keys: Sequence[Key], cursor: Key, order: Order, walk: Walk, new: Sequence[Any]
) -> bool:
    """Whether an answer to a request relative to `cursor` went against the list's order:
    no entry of it is on the expected side of the cursor and new to the walk."""
    fresh = {k.id for k in (key_of(raw) for raw in new) if k is not None}
    before = walk.taken - fresh  # what the walk had before this answer
    for key in keys:
        if key.id == cursor.id or key.id in before:
            continue
        if key.time_ns is None or cursor.time_ns is None:
            return False  # cannot tell: take it as going the right way
        if order is Order.DESC and key.time_ns <= cursor.time_ns:
            return False
        if order is Order.ASC and key.time_ns >= cursor.time_ns:
            return False
    return True


def _end(walk: Walk, *, complete: bool, trouble: str | None = None) -> Walk:
    return replace(walk, done=True, complete=complete, trouble=trouble, params={})


def take_page(walk: Walk, page: Sequence[Any]) -> PageResult:
    """Take one answer: the entries new to the list (deliver them), and the walk's next
    step (`walk.params`, or `walk.done`)."""
    if walk.done:
        raise ValueError("the walk is over")
    keys = [k for k in (key_of(raw) for raw in page) if k is not None]
    first_page = walk.cursor is None
    new, taken = _new_of(page, walk)
    # `taken` moves with every answer, even one that goes the wrong way: its entries are
    # real, and delivering them now or later is the same record (the same uid).
    walk = replace(walk, pages=walk.pages + 1, taken=frozenset(taken), below=_below(walk, keys))
    page_order = _order_of(keys)
    if walk.order is None and page_order is not None:
        walk = replace(walk, order=page_order)
        if not first_page and page_order is Order.ASC:
            # Walked as newest first, learned oldest first: start over, knowing it.
            return PageResult(_end(walk, complete=False, trouble="list order learned"), new)
    order = walk.order or Order.DESC  # Daily's lists are newest first until shown otherwise

    pending = next((p for p in ("starting_after", "ending_before") if p in walk.params), None)
    if not first_page and pending is not None and walk.cursor is not None:
        # The cursor's own entry says nothing of the direction (a server may repeat it at
        # the top of the next page): an answer of that alone is an empty one.
        if all(k.id == walk.cursor.id for k in keys):
            keys = []
        if not keys:
            if walk.reading is None and order is Order.DESC and not walk.tried_other:
                # Empty: the end of the list, or the wrong parameter. Ask with the other once.
                params = {**_base(walk), _other(pending): walk.cursor.id}
                return PageResult(replace(walk, params=params, tried_other=True), new)
            return PageResult(_end(walk, complete=True), new)
        if _wrong_way(keys, walk.cursor, order, walk, new):
            if walk.flips >= 1 or order is Order.ASC:
                return PageResult(
                    _end(walk, complete=False, trouble="Daily paged /logs/api both ways"), new
                )
            other = _other(pending)
            walk = replace(
                walk,
                reading=_reading_for(order, other),
                params={**_base(walk), other: walk.cursor.id},
                flips=walk.flips + 1,
            )
            return PageResult(walk, new)
        if walk.reading is None:
            walk = replace(walk, reading=_reading_for(order, pending))
        if page_order is not None and page_order is not order:
            # A page in the other order than the list's: its first entries may not be the
            # ones next to the cursor, so going on could jump over some. Stop, move nothing.
            return PageResult(
                _end(walk, complete=False, trouble="a /logs/api page came in reverse order"),
                new,
            )

    if not keys:
        return PageResult(_end(walk, complete=True), new)
    # Down to the committed position: an entry older than the window. (Not merely an entry
    # already delivered: a late one may sit below it, as the property test found.)
    if order is Order.DESC and any(
        k.time_ns is not None and k.time_ns < walk.floor_ns for k in keys
    ):
        return PageResult(_end(walk, complete=True), new)
    last = keys[-1]
    if walk.pages >= MAX_PAGES:
        # Oldest first, every page so far joins the last: what was delivered may commit.
        # Newest first, the committed position is not reached: nothing may.
        walk = replace(walk, cursor=last)
        return PageResult(
            _end(walk, complete=order is Order.ASC, trouble="too many pages in one walk"), new
        )
    name = _along(order, walk.reading or Reading.LIST)
    return PageResult(
        replace(walk, cursor=last, params={**_base(walk), name: last.id}, tried_other=False), new
    )


def _below(walk: Walk, keys: Sequence[Key]) -> Key | None:
    older = [k for k in keys if k.time_ns is not None and k.time_ns < walk.floor_ns]
    if walk.below is not None:
        older.append(walk.below)
    return max(older, key=_time_id, default=None)


def _time_id(key: Key) -> tuple[int, str]:
    return (key.time_ns or 0, key.id)


def _base(walk: Walk) -> dict[str, str]:
    return {k: v for k, v in walk.params.items() if k in ("source", "limit")}


def _new_of(page: Sequence[Any], walk: Walk) -> tuple[list[Any], set[str]]:
    taken = set(walk.taken)
    new: list[Any] = []
    for raw in page:
        key = key_of(raw)
        if key is None or not _is_new(key, walk, taken):
            continue
        taken.add(key.id)
        new.append(raw)
    return new, taken


def advance(walk: Walk, delivered: Sequence[Key], *, overlap_ns: int) -> Position:
    """The position to commit once what `walk` delivered (`delivered`) was acknowledged:
    the newest time, the ids within `overlap_ns` of it, and what the walk learned. An
    incomplete walk moves nothing but what it learned (its entries are delivered again by
    the next walk, with the same uid)."""
    position = walk.position
    learned = replace(
        position, order=walk.order or position.order, reading=walk.reading or position.reading
    )
    if not walk.complete:
        return learned
    times = [k.time_ns for k in delivered if k.time_ns is not None]
    if position.newest_ns is not None:
        times.append(position.newest_ns)
    if not times:
        return learned
    newest = max(times)
    seen = {**position.seen, **{k.id: k.time_ns for k in delivered if k.time_ns is not None}}
    keep = {i: t for i, t in seen.items() if t >= newest - overlap_ns}
    if learned.order is Order.ASC:
        dropped = [Key(i, t) for i, t in seen.items() if t < newest - overlap_ns]
        known = [k for k in (walk.below, position.anchor) if k is not None]
        anchor = max([*dropped, *known], key=_time_id, default=None)
        learned = replace(learned, anchor=anchor)
    return replace(learned, newest_ns=newest, seen=keep)
