"""The OTLP backend failing in every way the specification names, over gRPC and HTTP:
nothing is lost, retryable answers are retried, permanent ones stop the sweep without moving
any cursor, refused records (partial success) are counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daily_otel_bridge.otlp.transport import ExportError
from daily_otel_bridge.testing.otlp_receiver import Fault
from tests.faults._rig import close, rig

RETRIED = [
    pytest.param(Fault(grpc_status="UNAVAILABLE", count=2), "grpc", id="grpc-UNAVAILABLE"),
    pytest.param(
        Fault(grpc_status="RESOURCE_EXHAUSTED", retry_after_seconds=0.3, count=2),
        "grpc",
        id="grpc-RESOURCE_EXHAUSTED+RetryInfo",
    ),
    pytest.param(Fault(grpc_status="DEADLINE_EXCEEDED", count=2), "grpc", id="grpc-DEADLINE"),
    pytest.param(Fault(http_status=503, count=2), "http", id="http-503"),
    pytest.param(Fault(http_status=429, count=2), "http", id="http-429"),
    pytest.param(
        Fault(http_status=429, retry_after_seconds=0.4, count=2), "http", id="http-429+Retry-After"
    ),
    pytest.param(Fault(http_status=502, count=1), "http", id="http-502"),
    # Slow but inside the 10 s timeout: acknowledged, delivered once.
    pytest.param(Fault(delay_seconds=5.0, count=1), "grpc", id="grpc-slow-5s"),
]


@pytest.mark.parametrize(("fault", "protocol"), RETRIED)
async def test_retryable_answers_are_retried_and_deliver_exactly_once(
    tmp_path: Path, fault: Fault, protocol: str
) -> None:
    with rig(tmp_path) as r:
        r.receiver.set_fault(fault)
        pipeline = r.pipeline(
            r.settings(protocol=protocol, export={"timeout": "10s", "max_retry_time": "10s"})
        )
        stats = await pipeline.run_once()
        assert r.got() == r.want()
        assert stats.exported == len(r.bodies)
        assert r.receiver.fault is None, "the fault was not even met"
        await close(pipeline)


PERMANENT = [
    pytest.param(Fault(grpc_status="RESOURCE_EXHAUSTED"), "grpc", id="grpc-RESOURCE_EXHAUSTED"),
    pytest.param(Fault(grpc_status="INVALID_ARGUMENT"), "grpc", id="grpc-INVALID_ARGUMENT"),
    pytest.param(Fault(grpc_status="UNAUTHENTICATED"), "grpc", id="grpc-UNAUTHENTICATED"),
    pytest.param(Fault(http_status=400), "http", id="http-400"),
    pytest.param(Fault(http_status=413), "http", id="http-413"),
]


@pytest.mark.parametrize(("fault", "protocol"), PERMANENT)
async def test_permanent_refusals_are_not_retried_and_move_no_cursor(
    tmp_path: Path, fault: Fault, protocol: str
) -> None:
    with rig(tmp_path) as r:
        r.receiver.set_fault(fault)
        pipeline = r.pipeline(r.settings(protocol=protocol))
        with pytest.raises(ExportError) as info:
            await pipeline.run_once()
        assert not info.value.transient
        assert r.receiver.request_count() == 1, "a permanent refusal must not be retried"
        cursors = r.store.load_cursors("acme", "logs")
        assert all(c.watermark_ns is None and not c.seen for c in cursors.values())
        # The operator fixes the backend: everything arrives, once.
        r.receiver.set_fault(None)
        await pipeline.run_once()
        assert r.got() == r.want()
        await close(pipeline)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_partial_success_is_counted_and_the_rest_delivered(
    tmp_path: Path, protocol: str
) -> None:
    with rig(tmp_path) as r:
        r.receiver.set_fault(Fault(reject_records=7, count=2))
        pipeline = r.pipeline(r.settings(protocol=protocol))
        stats = await pipeline.run_once()
        assert stats.rejected == 14
        assert r.metrics.records_rejected.labels("acme", "logs")._value.get() == 14
        assert r.receiver.count() == len(r.bodies) - 14
        assert (await pipeline.run_once()).exported == 0, "refused records are not resent"
        await close(pipeline)


async def test_an_answer_slower_than_the_timeout_duplicates_only_that_batch(
    tmp_path: Path,
) -> None:
    with rig(tmp_path) as r:
        # The receiver stores the records, then answers after the client gave up.
        r.receiver.set_fault(Fault(delay_seconds=2.5, count=1))
        pipeline = r.pipeline(r.settings(export={"timeout": "1s", "max_retry_time": "5s"}))
        await pipeline.run_once()
        got, want = r.got(), r.want()
        assert not (want - got)
        first = r.receiver.requests()[0].records
        assert sum((got - want).values()) <= first
        await close(pipeline)


async def test_receiver_absent_then_present(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.receiver.stop_serving()
        pipeline = r.pipeline(r.settings(export={"max_retry_time": "1s"}))
        for _ in range(2):
            with pytest.raises(ExportError) as info:
                await pipeline.run_once()
            assert info.value.transient
        r.receiver.resume_serving()
        # grpc may still be inside its (capped, 5 s) reconnect wait: a sweep or two more.
        for _ in range(10):
            try:
                await pipeline.run_once()
                break
            except ExportError:
                await asyncio.sleep(1)
        assert r.got() == r.want()
        await close(pipeline)
