"""Source: who is in a call now (`presence: true`, off by default). One `GET /presence` per
`poll_interval` for the whole domain, through the domain's client (its token bucket, its
retries), counted by `core.presence` into the `participants_present` gauge: one series per
domain, or per room with `room_label: true`. No records, no position, no per-participant
series.

A failed poll (Daily answering 5xx past the retries, an unreadable answer) is counted in
`source_polls_failed_total` and leaves the gauge where it was; the poller asks again at its
next interval, and nothing else of the domain waits for it.
"""

from __future__ import annotations

from typing import Final

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.core.presence import count_presence
from daily_otel_bridge.instruments import PRESENCE_ENDPOINT
from daily_otel_bridge.sources.base import DomainSource, PollContext, Poller

NAME: Final = "presence"


class PresenceError(Exception):
    """An answer of `GET /presence` that is not Daily's shape (the reason names no value)."""


class PresencePoller:
    def __init__(self, context: PollContext) -> None:
        self.context = context

    async def poll(self) -> int:
        context = self.context
        answer = await context.daily.get_json(PRESENCE_ENDPOINT, {})
        try:
            counts = count_presence(answer)
        except MalformedRecord as exc:
            raise PresenceError(f"GET /{PRESENCE_ENDPOINT}: {exc}") from None
        metrics = context.metrics
        metrics.set_by_room(
            metrics.participants_present,
            context.domain,
            counts.by_room,
            room_label=context.settings.room_label,
        )
        return 0  # gauges only: nothing goes into the batch


async def open_presence(context: PollContext) -> Poller:
    s = context.settings
    context.metrics.init_sources(
        context.domain,
        meeting_summaries=s.meeting_summaries,
        presence=True,
        api_logs=s.api_logs,
        room_label=s.room_label,
    )
    return PresencePoller(context)


def _enabled(settings: DomainSettings) -> bool:
    return settings.presence


def _interval(settings: DomainSettings) -> float:
    return settings.poll_interval


SOURCE = DomainSource(
    name=NAME, enabled=_enabled, interval=_interval, open=open_presence, signals=()
)
