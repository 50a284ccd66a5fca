"""Source: Daily's webhook events, pushed to the receiver (`service.webhooks`) and held in
the state store's inbox until an acknowledged export takes them out.

One poller per domain drains the inbox oldest first: each event becomes one LogRecord
(`core.webhook_events.encode_event`), is noted `inbox_done` in the open batch (so it leaves
the inbox in the transaction that commits that batch, after the backend's acknowledgement),
and gives the poller its hint (`meeting.started` tracks the session now, `meeting.ended`
starts its grace period, participant events make a meeting busy).

Events in the open batch, or in a batch in flight, are still pending in the store until
their commit: the poller keeps their ids (`in_flight`) so that the next poll does not add
them again. A crash or a failed attempt drops that memory along with the batches it
covered: the next attempt opens a new poller, which takes every still-pending event once.

A stored event that cannot be parsed or encoded (the receiver parsed it before storing, so
only a damaged row or a newer parser gets here) becomes a dead letter and leaves the inbox,
so that it cannot hold the domain's webhooks back.

The receiver of this process wakes the poller at once (`DomainPolling.wake`); the interval
below is for the events another replica accepted, and a safety net.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import structlog

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.webhook_events import (
    MalformedEvent,
    RoomBusy,
    SessionEnded,
    SessionStarted,
    WebhookEvent,
    encode_event,
    event_time_ns,
    parse_event,
    poller_hint,
)
from daily_otel_bridge.sources.base import DomainSource, PollContext, Poller

NAME: Final = "webhooks"
# Seconds between two looks at the inbox when nothing woke the poller: the events another
# replica accepted for a domain this one owns wait at most this long (plus the batch).
INBOX_POLL_INTERVAL: Final = 1.0
# Events read from the store per query, on top of those already in flight.
DRAIN_CHUNK: Final = 500

log = structlog.get_logger(__name__)


class InboxEvent(Protocol):
    """What the inbox gives (`state.base.InboxEvent`; sources do not import the state)."""

    @property
    def event_id(self) -> str: ...

    @property
    def body(self) -> bytes: ...

    @property
    def received_at(self) -> float: ...


def _enabled(settings: DomainSettings) -> bool:
    # Any replica may accept a domain's events, so the owner drains the inbox whenever the
    # domain has a hook, whether or not this process runs a receiver.
    return settings.webhook_secret is not None or settings.webhook_secret_file is not None


def _interval(settings: DomainSettings) -> float:
    return INBOX_POLL_INTERVAL


def _as_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


class InboxPoller:
    """The inbox of one domain, opened for one attempt of it."""

    def __init__(self, context: PollContext, *, clock: Callable[[], float] = time.time) -> None:
        self.context = context
        self.clock = clock
        # Ids in the open batch or in a batch not yet committed: still pending in the store.
        self.in_flight: set[str] = set()
        self._age = context.metrics.webhook_inbox_oldest_age.labels(context.domain)

    async def poll(self) -> int:
        taken = 0
        while True:
            limit = len(self.in_flight) + DRAIN_CHUNK
            pending: Sequence[InboxEvent] = await self.context.inbox_pending(limit)
            complete = len(pending) < limit  # the whole inbox, not its oldest `limit`
            if complete:
                # What we added and the store no longer holds was committed: forget it.
                self.in_flight.intersection_update(e.event_id for e in pending)
            self._age.set(max(0.0, self.clock() - pending[0].received_at) if pending else 0.0)
            fresh = [e for e in pending if e.event_id not in self.in_flight]
            if fresh:
                taken += await self._take(fresh)
            if complete or not fresh:
                return taken

    async def _take(self, events: Sequence[InboxEvent]) -> int:
        context = self.context
        batcher = context.batcher
        taken = 0
        lettered: list[str] = []
        for stored in events:
            event = self._encode(stored)
            if event is None:
                lettered.append(stored.event_id)
                self.in_flight.add(stored.event_id)
                continue
            parsed, data, time_ns = event
            batcher.add_domain_log(data, stored.event_id, time_ns, NAME)
            batcher.note_inbox_done([stored.event_id])
            self.in_flight.add(stored.event_id)
            taken += 1
            await self._hint(parsed)
        # Backpressure, and the dead letters written before the batch that takes their
        # events out of the inbox can commit (a crash in between keeps the event, which is
        # lettered again: the store keeps a letter once).
        await context.room()
        if lettered:
            batcher.note_inbox_done(lettered)
        return taken

    def _encode(self, stored: InboxEvent) -> tuple[WebhookEvent, bytes, int] | None:
        received_ns = int(stored.received_at * 1_000_000_000)
        try:
            parsed = parse_event(stored.body)
            data = encode_event(parsed, received_ns=received_ns)
        except (MalformedEvent, ValueError, TypeError, OverflowError) as exc:
            self.context.dead_letter(
                NAME, "", stored.event_id, f"cannot export: {exc}", _as_text(stored.body)
            )
            return None
        time_ns, _ = event_time_ns(parsed, received_ns)
        return parsed, data, time_ns

    async def _hint(self, event: WebhookEvent) -> None:
        hint = poller_hint(event)
        if hint is None:
            return
        hints = self.context.hints
        try:
            if isinstance(hint, SessionStarted):
                await hints.meeting_started(hint.mtg_session_id, hint.room, hint.start_ms)
            elif isinstance(hint, SessionEnded):
                await hints.meeting_ended(hint.mtg_session_id, hint.end_ms)
            elif isinstance(hint, RoomBusy):
                await hints.meeting_busy(hint.mtg_session_id, hint.room)
        except Exception as exc:  # a hint is only a hint: discovery finds the meeting anyway
            log.warning(
                "webhook hint not applied; discovery catches up",
                domain=self.context.domain,
                event_id=event.id,
                hint=hint.kind,
                error=type(exc).__name__,
            )


async def _open(context: PollContext) -> Poller:
    return InboxPoller(context)


SOURCE: Final = DomainSource(name=NAME, enabled=_enabled, interval=_interval, open=_open)

__all__ = ["DRAIN_CHUNK", "INBOX_POLL_INTERVAL", "NAME", "SOURCE", "InboxPoller"]
