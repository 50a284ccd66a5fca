"""Checks of `backfill`'s arguments before anything is exported.

Each mistake is a `UsageError` naming the option: a --domain that is not in the config, a
--since/--until that is not a time, and a --session that Daily does not know (before this
check, such a session "succeeded" with 0 records exported, indistinguishable from a session
that had no records in the range).
"""

from __future__ import annotations

import time

import structlog

from daily_otel_bridge.cli.errors import UsageError
from daily_otel_bridge.config.settings import ConfigError, Settings
from daily_otel_bridge.daily.client import DailyApiError, DailyClient
from daily_otel_bridge.pipeline.backfill import parse_instant

log = structlog.get_logger("daily_otel_bridge.cli.backfill")

# How long before --since a session may have started and still reach into the range; the
# same margin the room search of `run_backfill` uses. Meetings last hours, not days.
SESSION_START_MARGIN = 86_400


def _instant(option: str, value: str, now: float) -> float:
    try:
        return parse_instant(value, now=now)
    except ConfigError as exc:
        raise UsageError(f"{option} {exc}") from None


async def check_backfill_args(
    settings: Settings,
    *,
    domain: str,
    session: str | None,
    since: str,
    until: str | None,
) -> bool:
    """Raise UsageError for a mistaken argument; False when Daily could not be asked (the
    error is logged); True when the backfill can go ahead."""
    names = [d.name for d in settings.domains]
    chosen = next((d for d in settings.domains if d.name == domain), None)
    if chosen is None:
        raise UsageError(f"--domain {domain!r} is not in the config (it has: {', '.join(names)})")
    now = time.time()
    start = _instant("--since", since, now)
    end = _instant("--until", until, now) if until else now
    if end <= start:
        raise UsageError("--until must be after --since")
    if session is None:
        return True
    client = DailyClient(
        domain=chosen.name,
        api_url=chosen.api_url,
        api_key=chosen.api_key.get_secret_value(),
        requests_per_second=chosen.requests_per_second,
        timeout=chosen.request_timeout,
        ca_file=chosen.ca_file,
    )
    try:
        meetings = await client.list_meetings(timeframe_start=int(start) - SESSION_START_MARGIN)
    except DailyApiError as exc:
        log.error("backfill failed", error_type=type(exc).__name__, error=str(exc))
        return False
    finally:
        await client.close()
    found = next((m for m in meetings if m.id == session), None)
    log.debug("backfill session lookup", session=session, found=found is not None)
    if found is None:
        earliest = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - SESSION_START_MARGIN))
        raise UsageError(
            f"--session {session!r}: domain {domain!r} has no meeting session with this id that "
            f"started after {earliest} (GET /meetings); check the id (the mtgSessionId) and "
            "--since"
        )
    if found.start_time > end or (found.end_time is not None and found.end_time < start):
        log.info(
            "the session does not overlap the range; nothing to export",
            session=session,
            session_start=found.start_time,
            session_end=found.end_time,
        )
    return True
