"""`daily-otel-bridge backfill`: re-export a time range of sessions; the live cursor stays."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog

from daily_otel_bridge.config.settings import ConfigError, Settings, parse_duration
from daily_otel_bridge.core.cursor import SessionCursor, SessionRead, StreamDrain
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.counts import PassReport
from daily_otel_bridge.pipeline.domain import DomainPipeline, build_pipeline, room_selected
from daily_otel_bridge.pipeline.reader import ReadResult
from daily_otel_bridge.sources import PageContext
from daily_otel_bridge.state.memory import MemoryCursorStore

log = structlog.get_logger("daily_otel_bridge.pipeline.backfill")


def parse_instant(value: str, *, now: float) -> float:
    """An ISO-8601 time (UTC when no zone is given), or a duration meaning that long ago."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{value!r}: expected an ISO-8601 time or a duration such as 2h"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


async def run_backfill(
    settings: Settings,
    *,
    domain: str,
    session: str | None,
    room: str | None,
    since: str,
    until: str | None,
) -> int:
    chosen = next((d for d in settings.domains if d.name == domain), None)
    if chosen is None:
        raise ConfigError(f"--domain {domain!r} is not in the config")
    now = time.time()
    start = parse_instant(since, now=now)
    end = parse_instant(until, now=now) if until else now
    if end <= start:
        raise ConfigError("--until must be after --since")
    metrics = BridgeMetrics()
    # A backfill moves no cursor: it needs no state store, takes no lock and can run next
    # to the daemon (SQLite) or the replicas (PostgreSQL). What its reads would write (dead
    # letters of records the live pipeline kept already) stays in memory.
    store = MemoryCursorStore()
    pipeline = build_pipeline(chosen, store=store, metrics=metrics, persist=False)
    try:
        meetings = await pipeline.client.list_meetings(
            timeframe_start=int(start) - 86_400, room=room
        )
        if session is not None:
            # The room, as the live records carry it (`daily.room`), when Daily still lists it.
            rooms = {m.id: m.room for m in meetings}
            targets = [(session, rooms.get(session, ""))]
        else:
            targets = [
                (m.id, m.room)
                for m in meetings
                if room is not None
                and room_selected(m.room, [room])
                and m.start_time <= end
                and (m.end_time is None or m.end_time >= start - 3600)
            ]
        total = 0
        for session_id, room_name in targets:
            stats = await backfill_session(
                pipeline, session_id, room_name, int(start * 1000), int(end * 1000)
            )
            total += stats.exported
            log.info("session backfilled", session=session_id, exported=stats.exported)
        log.info("backfill done", sessions=len(targets), exported=total)
        return 0
    except Exception as exc:
        log.error("backfill failed", error_type=type(exc).__name__, error=str(exc))
        return 1
    finally:
        await pipeline.close()


async def backfill_session(
    pipeline: DomainPipeline, session_id: str, room: str, start_ms: int, end_ms: int
) -> PassReport:
    """Re-export one session's records in `[start_ms, end_ms]`; no cursor moves.

    Uses throwaway cursors: the uids are the same as the live ones (they depend only on the
    records), so a backend that de-duplicates on `log.record.uid` can.
    """
    before = pipeline.snapshot()
    page = PageContext()
    drains: dict[str, StreamDrain] = {}
    for source in pipeline.sources:
        name = source.name
        cursor = SessionCursor(session_id=session_id, room=room, start_floor_ms=start_ms)
        read = SessionRead(
            cursor=cursor, start_ms=start_ms, end_ms=end_ms, limit=pipeline.settings.page_size
        )
        drains[name] = StreamDrain(
            read=read, deliver=pipeline.records.deliverer(source, read, page)
        )
    result = ReadResult()
    try:
        await pipeline.reader.drain(session_id, drains, page, result)
        await pipeline.batcher.flush()
    except BaseException:
        await pipeline.reset()
        raise
    pipeline.totals.count_read(
        session_id,
        fetched=result.fetched,
        reread=result.reread,
        requests=result.requests,
        not_found=result.not_found,
    )
    return pipeline.snapshot().since(before)
