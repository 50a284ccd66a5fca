"""The Daily calls of the sources beside the call logs: `GET /presence` and `GET /logs/api`,
each one request through `DailyClient.get_json` (paced by the domain's token bucket, retried,
counted under its endpoint), its answer checked here so that a malformed one is a
`TransientError` like any other unreadable answer (the source backs off; the others go on).

Meeting summaries need no call of their own: they read the `participants` of the
`GET /meetings` entries discovery fetches already (`parse_meeting_summary_input`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daily_otel_bridge.core.api_logs import SOURCES
from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.core.presence import PresenceCounts, count_presence
from daily_otel_bridge.core.summaries import MeetingSummary, parse_meeting
from daily_otel_bridge.daily.client import DailyClient, TransientError
from daily_otel_bridge.instruments import API_LOGS_ENDPOINT, PRESENCE_ENDPOINT

# The query keys `list_api_logs` sends; anything else is a caller's mistake.
_API_LOGS_PARAMS = frozenset({"source", "limit", "starting_after", "ending_before", "url"})
# Daily's other lists cap `limit` at 100 (docs.daily.co/reference/rest-api/meetings): ask no
# more (the cursor never takes a short page for the end anyway).
MAX_API_LOGS_LIMIT = 100


async def get_presence(client: DailyClient) -> PresenceCounts:
    """Participants present per room now (one request for the whole domain)."""
    body = await client.get_json(PRESENCE_ENDPOINT, {})
    try:
        return count_presence(body)
    except MalformedRecord as exc:
        raise TransientError(f"GET /{PRESENCE_ENDPOINT}: {exc}") from None


async def list_api_logs(client: DailyClient, params: Mapping[str, str]) -> list[Any]:
    """One page of `/logs/api`, the raw entries in Daily's order, for
    `core.api_logs.take_page` (`params` is `Walk.params`). Daily documents the entry fields
    but not the envelope: a JSON array, or an object with a `data` list, are both taken."""
    unknown = set(params) - _API_LOGS_PARAMS
    if unknown:
        raise ValueError(f"unexpected /logs/api parameters: {sorted(unknown)}")
    source = params.get("source", "api")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    query = dict(params)
    if "limit" in query:
        query["limit"] = str(max(1, min(int(query["limit"]), MAX_API_LOGS_LIMIT)))
    body = await client.get_json(API_LOGS_ENDPOINT, query)
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        entries: list[Any] = body["data"]
        return entries
    raise TransientError(f"GET /{API_LOGS_ENDPOINT}: response is neither a list nor has 'data'")


def parse_meeting_summary_input(raw: object) -> MeetingSummary:
    """One raw `/meetings` entry of an ended meeting, checked (`core.summaries.parse_meeting`;
    MalformedRecord with the reason). Discovery must keep the raw entry (or its
    `participants`) and ask without `no_participants=true` for the summaries to have them."""
    return parse_meeting(raw)
