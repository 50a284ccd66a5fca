"""Source: the domain's REST API requests and webhook deliveries (`GET /logs/api`,
`api_logs: true`, off by default): one `daily.api.request` LogRecord per entry
(`log.record.uid` = Daily's log id), bodies only with `api_logs_bodies: true` and then
scrubbed (`core.scrub`).

Daily keeps the two kinds in two lists (`source=api`, `source=webhook`); each is walked by
the id cursor of `core.api_logs` (right whichever way `starting_after` / `ending_before`
walk), and its `Position` is committed as JSON under its own key (`api_logs.api`,
`api_logs.webhook`) with the batch that carries the entries it covers. One walk per list per
`poll_interval`: one request when nothing is new, more while catching up, all through the
domain's token bucket. The per-route and failed-delivery counters move when the batch
holding the entry is committed, so a re-delivery after a crash is not counted twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import structlog

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.api_logs import (
    SOURCES,
    ApiLogEntry,
    Key,
    Order,
    Position,
    Reading,
    advance,
    encode_entry,
    key_of,
    parse_entry,
    start_walk,
    take_page,
)
from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.instruments import API_LOGS_ENDPOINT
from daily_otel_bridge.sources.base import DomainSource, PollContext, Poller

NAME: Final = "api_logs"
# Daily caps the `limit` of its lists at 100.
PAGE_LIMIT: Final = 100
_NS: Final = 1_000_000_000

_log = structlog.get_logger(__name__)


def position_key(source: str) -> str:
    """The key of one list's position among the domain's (`api_logs.api`, ...)."""
    return f"{NAME}.{source}"


# -- the position as JSON -------------------------------------------------------------------


def encode_position(position: Position) -> str:
    doc: dict[str, Any] = {
        "newest_ns": position.newest_ns,
        "seen": dict(sorted(position.seen.items())),
        "order": position.order.value if position.order else None,
        "reading": position.reading.value if position.reading else None,
        "anchor": (
            [position.anchor.id, position.anchor.time_ns] if position.anchor is not None else None
        ),
    }
    return json.dumps(doc, separators=(",", ":"))


def _int_or_none(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer")
    return value


def decode_position(text: str | None) -> Position:
    """A committed position; ValueError naming the field for one that is not ours."""
    if not text:
        return Position()
    try:
        doc = json.loads(text)
    except ValueError:
        raise ValueError("the api_logs position is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("the api_logs position is not an object")
    seen = doc.get("seen") or {}
    if not isinstance(seen, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in seen.items()
    ):
        raise ValueError("seen is not a map of ids to times")
    anchor = doc.get("anchor")
    key: Key | None = None
    if anchor is not None:
        if not (isinstance(anchor, list) and len(anchor) == 2 and isinstance(anchor[0], str)):
            raise ValueError("anchor is not [id, time]")
        key = Key(anchor[0], _int_or_none(anchor[1], "anchor time"))
    try:
        order = Order(doc["order"]) if doc.get("order") is not None else None
        reading = Reading(doc["reading"]) if doc.get("reading") is not None else None
    except ValueError:
        raise ValueError("order or reading is not one the bridge knows") from None
    return Position(
        newest_ns=_int_or_none(doc.get("newest_ns"), "newest_ns"),
        seen=seen,
        order=order,
        reading=reading,
        anchor=key,
    )


def page_of(answer: object) -> list[Any]:
    """The entries of one answer: a JSON array, or an object with a `data` list (Daily
    documents the entries, not the envelope)."""
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("data"), list):
        entries: list[Any] = answer["data"]
        return entries
    raise MalformedRecord(f"GET /{API_LOGS_ENDPOINT}: response is neither a list nor has 'data'")


# -- the poller -----------------------------------------------------------------------------


class ApiLogsPoller:
    def __init__(self, context: PollContext, positions: dict[str, Position]) -> None:
        self.context = context
        self.positions = positions
        self.log = _log.bind(domain=context.domain, source=NAME)

    async def poll(self) -> int:
        taken = 0
        for source in SOURCES:
            taken += await self._walk(source)
        return taken

    async def _walk(self, source: str) -> int:
        context = self.context
        settings = context.settings
        overlap_ns = int(settings.lookback * _NS)
        position = self.positions[source]
        walk = start_walk(
            position,
            source=source,
            limit=PAGE_LIMIT,
            overlap_ns=overlap_ns,
            start_ns=time.time_ns() - int(settings.initial_lookback * _NS),
        )
        delivered: list[Key] = []
        while not walk.done:
            await context.room()
            answer = await context.daily.get_json(API_LOGS_ENDPOINT, walk.params)
            result = take_page(walk, page_of(answer))
            self._deliver(source, result.new, delivered)
            walk = result.walk
        if walk.trouble:
            self.log.warning("walk of /logs/api ended early", list=source, reason=walk.trouble)
        moved = advance(walk, delivered, overlap_ns=overlap_ns)
        if moved != position:
            # After the entries it covers: committed with their batch (or a later one).
            context.batcher.note_position(position_key(source), encode_position(moved))
            self.positions[source] = moved
        return len(delivered)

    def _deliver(self, source: str, new: Sequence[Any], delivered: list[Key]) -> None:
        context = self.context
        bodies = context.settings.api_logs_bodies
        observed = time.time_ns()
        for raw in new:
            key = key_of(raw)
            if key is None:  # pragma: no cover - the walk hands over only entries with an id
                continue
            try:
                entry = parse_entry(raw)
                data = encode_entry(entry, observed_ns=observed, bodies=bodies)
            except (MalformedRecord, ValueError) as exc:
                # Never the raw entry in a dead letter: its bodies may hold secrets.
                context.dead_letter(NAME, source, key.id, str(exc), {"id": key.id})
                delivered.append(key)  # seen: not dead-lettered again on the next walk
                continue
            context.batcher.add_domain_log(data, entry.id, entry.time_ns, NAME)
            context.batcher.after_commit(self._counter(entry))
            delivered.append(Key(entry.id, entry.time_ns))

    def _counter(self, entry: ApiLogEntry) -> Callable[[], None]:
        metrics, domain = self.context.metrics, self.context.domain
        return lambda: metrics.api_log_entry(domain, entry)


async def open_api_logs(context: PollContext) -> Poller:
    s = context.settings
    context.metrics.init_sources(
        context.domain,
        meeting_summaries=s.meeting_summaries,
        presence=s.presence,
        api_logs=True,
        room_label=s.room_label,
    )
    committed = await context.positions()
    positions: dict[str, Position] = {}
    for source in SOURCES:
        try:
            positions[source] = decode_position(committed.get(position_key(source)))
        except ValueError as exc:
            # Not a reason to stop the domain: the list is walked again from
            # `initial_lookback`, its entries sent again under Daily's ids as uids.
            _log.warning(
                "position unreadable; the list is walked again from initial_lookback",
                domain=context.domain,
                source=NAME,
                list=source,
                error=str(exc),
            )
            positions[source] = Position()
    return ApiLogsPoller(context, positions)


def _enabled(settings: DomainSettings) -> bool:
    return settings.api_logs


def _interval(settings: DomainSettings) -> float:
    return settings.poll_interval


SOURCE = DomainSource(name=NAME, enabled=_enabled, interval=_interval, open=open_api_logs)
