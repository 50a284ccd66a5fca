"""The batcher: batches bounded in size and time, exports in flight, commits in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.otlp.resource import domain_resource
from daily_otel_bridge.otlp.transport import ExportError, ExportOutcome
from daily_otel_bridge.pipeline.batcher import Batcher
from daily_otel_bridge.state.memory import MemoryCursorStore

LOGS = "logs"


class GatedExporter:
    """Holds every request until the test releases it (or fails it)."""

    protocol = "test"

    def __init__(self) -> None:
        self.gates: list[asyncio.Future[ExportOutcome]] = []
        self.sizes: list[int] = []
        self.max_in_flight = 0
        self._in_flight = 0

    async def export(self, signal: str, request: Any) -> ExportOutcome:
        gate: asyncio.Future[ExportOutcome] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        self.sizes.append(len(request.resource_logs[0].scope_logs[0].log_records))
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await gate
        finally:
            self._in_flight -= 1

    def ack(self, index: int) -> None:
        self.gates[index].set_result(ExportOutcome(rejected=0, error_message=""))

    def fail(self, index: int) -> None:
        self.gates[index].set_exception(ExportError("refused", transient=False))

    async def close(self) -> None:
        return None


def make(
    exporter: GatedExporter, store: MemoryCursorStore, *, size: int = 2, timeout: float = 60
) -> Batcher:
    return Batcher(
        domain="acme",
        resource=domain_resource("acme", {}),
        exporter=exporter,
        store=store,
        metrics=BridgeMetrics(),
        batch_size=size,
        batch_timeout=timeout,
        max_inflight=2,
        lookback_ms=0,
    )


def add(batcher: Batcher, cursor: SessionCursor, n: int) -> None:
    """What the per-record path does: a record in the batch, the cursor moved past it."""
    for _ in range(n):
        batcher.log_for(LOGS).add().body.string_value = "x"
        cursor.watermark_ns = (cursor.watermark_ns or 0) + 1_000_000
        batcher.update_for(LOGS, cursor).new_seen.append((f"u{cursor.watermark_ns}", 0))


def committed_watermark(store: MemoryCursorStore, session: str = "s") -> int | None:
    cursor = store.cursors.get(("acme", LOGS), {}).get(session)
    return None if cursor is None else cursor.watermark_ns


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_acknowledgements_out_of_order_commit_in_order() -> None:
    exporter, store = GatedExporter(), MemoryCursorStore()
    batcher = make(exporter, store)
    cursor = SessionCursor("s", "r", 0)
    add(batcher, cursor, 2)
    await batcher.room()  # full: sealed, first export in flight
    add(batcher, cursor, 2)
    await batcher.room()  # second in flight
    await settle()
    assert len(exporter.gates) == 2
    exporter.ack(1)  # the later batch is acknowledged first
    await settle()
    assert committed_watermark(store) is None, "batch 2 must wait for batch 1"
    exporter.ack(0)
    await batcher.flush()
    assert committed_watermark(store) == 4_000_000
    assert store.commits == 2


async def test_a_failed_batch_moves_nothing_after_it() -> None:
    exporter, store = GatedExporter(), MemoryCursorStore()
    batcher = make(exporter, store)
    cursor = SessionCursor("s", "r", 0)
    add(batcher, cursor, 2)
    await batcher.room()
    add(batcher, cursor, 2)
    await batcher.room()
    await settle()
    exporter.ack(1)
    exporter.fail(0)
    with pytest.raises(ExportError):
        await batcher.flush()
    assert committed_watermark(store) is None
    assert store.commits == 0
    with pytest.raises(ExportError):
        await batcher.room()  # the reads learn of it at their next page


async def test_exports_in_flight_are_bounded_and_reads_wait() -> None:
    exporter, store = GatedExporter(), MemoryCursorStore()
    batcher = make(exporter, store)
    cursor = SessionCursor("s", "r", 0)
    for _ in range(2):
        add(batcher, cursor, 2)
        await batcher.room()
    add(batcher, cursor, 2)
    third = asyncio.create_task(batcher.room())  # both slots taken: this read must wait
    await settle()
    assert not third.done()
    assert exporter.max_in_flight == 2
    # Records held: two batches in flight + the open one (the bound of the README).
    assert batcher.in_memory == 2
    exporter.ack(0)
    await settle()
    assert third.done()
    exporter.ack(1)
    await settle()
    exporter.ack(2)
    await batcher.flush()
    assert exporter.max_in_flight == 2
    assert committed_watermark(store) == 6_000_000


async def test_a_trickle_leaves_on_time() -> None:
    exporter, store = GatedExporter(), MemoryCursorStore()
    batcher = make(exporter, store, size=1000, timeout=0.05)
    timer = asyncio.create_task(batcher.run_timer())
    cursor = SessionCursor("s", "r", 0)
    try:
        add(batcher, cursor, 1)
        for _ in range(200):  # far less than batch_size: only the timeout can send it
            if exporter.gates:
                break
            await asyncio.sleep(0.01)
        assert exporter.sizes == [1]
        exporter.ack(0)
        await batcher.flush()
        assert committed_watermark(store) == 1_000_000
    finally:
        timer.cancel()


async def test_cursor_updates_without_records_are_committed_after_earlier_batches() -> None:
    exporter, store = GatedExporter(), MemoryCursorStore()
    batcher = make(exporter, store)
    cursor = SessionCursor("s", "r", 0)
    add(batcher, cursor, 2)
    await batcher.room()
    cursor.drained_until_ms = 99  # a read completed: noted, no record
    batcher.update_for(LOGS, cursor)
    flushed = asyncio.create_task(batcher.flush())
    await settle()
    assert store.commits == 0
    exporter.ack(0)
    await flushed
    assert store.commits == 2
    assert store.cursors[("acme", LOGS)]["s"].drained_until_ms == 99


async def test_a_request_never_carries_more_than_batch_size_records() -> None:
    exporter, store = GatedExporter(), MemoryCursorStore()
    batcher = make(exporter, store, size=2)
    cursor = SessionCursor("s", "r", 0)
    add(batcher, cursor, 5)  # one large page: the batch closes between records
    flushed = asyncio.create_task(batcher.flush())
    for index in range(3):
        await settle()
        exporter.ack(index)
    await flushed
    assert exporter.sizes == [2, 2, 1]
    assert exporter.max_in_flight <= 2
    assert committed_watermark(store) == 5_000_000
