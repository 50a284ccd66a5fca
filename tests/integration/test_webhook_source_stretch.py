"""Discovery while webhooks flow: it may run `webhooks.discovery_stretch` times less often,
only while meeting starts or ends were pushed recently; errors alone never stretch it."""

from __future__ import annotations

from pathlib import Path

from daily_otel_bridge.config.settings import parse_settings
from daily_otel_bridge.daily.client import DailyClient
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.domain import DomainPipeline
from daily_otel_bridge.pipeline.loop import PUSHED_HEALTHY_FOR, QUICK_DISCOVERIES
from daily_otel_bridge.service.app import discovery_stretch_of
from tests.integration.test_pass import Rig, close, rig_for, sim_config
from tests.webhook_inbox import SECRET


def pipeline_at(rig: Rig, now: list[float], stretch: float) -> DomainPipeline:
    settings = rig.settings(webhook_secret=SECRET, poll_interval="15s")
    client = DailyClient(
        domain=settings.name,
        api_url=settings.api_url,
        api_key=settings.api_key.get_secret_value(),
        requests_per_second=settings.requests_per_second,
        metrics=rig.metrics,
    )
    exporter = Exporter(build_transport(settings.export), max_retry_time=2.0)
    return DomainPipeline(
        settings,
        client=client,
        exporter=exporter,
        store=rig.store,
        metrics=rig.metrics,
        clock=rig.sim.simulator.now,
        monotonic=lambda: now[0],
        discovery_stretch=stretch,
    )


async def test_discovery_stretches_only_while_meeting_events_flow(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=1, records_per_meeting=5), tmp_path) as rig:
        now = [1000.0]
        pipeline = pipeline_at(rig, now, stretch=3.0)
        loop = pipeline.loop
        base = 15.0 / (QUICK_DISCOVERIES + 1)
        assert loop.discovery_delay() == base  # nothing pushed yet
        await loop.meeting_busy("m-1", "r")  # a participant event: no stretch
        assert loop.discovery_delay() == base
        await loop.meeting_started("m-1", "r", None)
        assert loop.discovery_delay() == base * 3
        now[0] += PUSHED_HEALTHY_FOR + 1  # no start or end pushed for a while
        assert loop.discovery_delay() == base
        await loop.meeting_ended("m-1", None)
        assert loop.discovery_delay() == base * 3
        await close(pipeline)


def test_the_stretch_applies_only_with_the_receiver_on() -> None:
    domains = [{"name": "acme", "api_key": "k", "webhook_secret": SECRET}]
    off = parse_settings({"domains": domains}, environ={})
    assert discovery_stretch_of(off) == 1.0
    on = parse_settings({"domains": domains, "webhooks": {}}, environ={})
    assert discovery_stretch_of(on) == 2.0  # the default: conservative
    disabled = parse_settings({"domains": domains, "webhooks": {"enabled": False}}, environ={})
    assert discovery_stretch_of(disabled) == 1.0
    custom = parse_settings({"domains": domains, "webhooks": {"discovery_stretch": 4}}, environ={})
    assert discovery_stretch_of(custom) == 4.0
