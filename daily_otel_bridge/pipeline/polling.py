"""The domain sources of one domain, each polled on its own interval (`sources.DomainSource`).

Each enabled domain source is opened once per attempt of the domain (so after a failure it
starts again from what was committed) and polled by its own task. A poll that fails is
logged and counted, and the source is polled again at its next interval: a failing source
stops nothing but itself, neither the session reads nor the other sources. What a poll
takes goes into the domain's one batcher, and its position (or inbox events) is committed
with that batch, after the backend's acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.trouble import clip
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.batcher import Batcher
from daily_otel_bridge.pipeline.records import RecordPath
from daily_otel_bridge.sources.base import (
    DailyGet,
    DomainSource,
    MeetingsSeen,
    Poller,
    SessionHints,
)
from daily_otel_bridge.state.base import CursorStore

# A poll that keeps failing is retried at its interval, but at least this far apart.
MIN_RETRY_INTERVAL = 5.0


class DomainPolling:
    """The `PollContext` of a domain's sources, and the tasks that poll them."""

    def __init__(
        self,
        settings: DomainSettings,
        *,
        sources: Sequence[DomainSource],
        batcher: Batcher,
        records: RecordPath,
        daily: DailyGet,
        store: CursorStore,
        hints: SessionHints,
        meetings: MeetingsSeen,
        metrics: BridgeMetrics,
    ) -> None:
        self._settings = settings
        self.sources = tuple(sources)
        self._batcher = batcher
        self._records = records
        self._daily = daily
        self._store = store
        self._hints = hints
        self._meetings = meetings
        self._metrics = metrics
        self._pollers: dict[str, Poller] = {}
        self._wake: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in self.sources}
        self.log = structlog.get_logger(__name__).bind(domain=settings.name)

    # -- PollContext -------------------------------------------------------------------------

    @property
    def domain(self) -> str:
        return self._settings.name

    @property
    def settings(self) -> DomainSettings:
        return self._settings

    @property
    def metrics(self) -> BridgeMetrics:
        return self._metrics

    @property
    def batcher(self) -> Batcher:
        return self._batcher

    @property
    def daily(self) -> DailyGet:
        return self._daily

    @property
    def hints(self) -> SessionHints:
        return self._hints

    @property
    def meetings(self) -> MeetingsSeen:
        return self._meetings

    async def room(self) -> None:
        await self._batcher.room()
        await self._records.flush_dead_letters()

    async def positions(self) -> Mapping[str, str]:
        return await self._store.load_positions(self.domain)

    async def inbox_pending(self, limit: int) -> Sequence[Any]:
        return await self._store.inbox_pending(self.domain, limit)

    def dead_letter(self, stream: str, key: str, uid: str, reason: str, record: Any) -> None:
        self._records.keep(stream, key, uid, reason, record)

    # -- running -----------------------------------------------------------------------------

    def wake(self, name: str) -> None:
        """Poll source `name` now (e.g. the webhook inbox, when an event came in)."""
        event = self._wake.get(name)
        if event is not None:
            event.set()

    async def open(self) -> None:
        """Open every source (each loads its committed position)."""
        for source in self.sources:
            self._pollers[source.name] = await source.open(self)

    async def poll_once(self, source: DomainSource) -> bool:
        """One poll of one source; False when it failed (logged and counted)."""
        poller = self._pollers[source.name]
        try:
            taken = await poller.poll()
            await self.room()
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._metrics.source_polls_failed.labels(self.domain, source.name).inc()
            self.log.warning(
                "source poll failed; polled again at its next interval",
                source=source.name,
                error=clip(str(exc) or type(exc).__name__, 300),
            )
            if self._batcher.failure is not None:
                raise  # the batch failed: the domain starts over, this source with it
            return False
        if taken:
            self.log.debug("source polled", source=source.name, records=taken)
        return True

    async def poll_all_once(self) -> None:
        """Every source once (`run --once`)."""
        for source in self.sources:
            await self.poll_once(source)

    async def run(self) -> None:
        """Poll every source on its interval until cancelled."""
        await asyncio.gather(*(self._run_source(s) for s in self.sources))

    async def _run_source(self, source: DomainSource) -> None:
        wake = self._wake[source.name]
        while True:
            # Cleared before the poll, not after: a wake that comes while it runs (an event
            # stored meanwhile) must poll again at once, not wait for the interval.
            wake.clear()
            ok = await self.poll_once(source)
            interval = source.interval(self._settings)
            if not ok:
                interval = max(interval, MIN_RETRY_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=interval)
