"""`daily-otel-bridge demo`: the bundled simulator, a temporary state file, console output.

A newcomer sees records flow within seconds without a Daily account; `--endpoint` sends the
same records to a real OTLP receiver instead. The demo ends with one summary line (records
read, delivered, failed export requests) and exits 1 when nothing could be delivered: a dead
endpoint must not look like a success.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter

from daily_otel_bridge.instruments import BridgeMetrics

DEMO_KEY = "demo-key-not-a-secret"
EXIT_OK = 0
EXIT_NOTHING_DELIVERED = 1

# Short export deadlines: the demo runs against loopback, and `--duration` must end the demo
# close to when asked even when the endpoint is dead (the stop waits for the export in flight,
# bounded by these; the daemon's defaults, 10 s and 60 s, would add up to a minute).
DEMO_EXPORT_TIMEOUT = "2s"
DEMO_MAX_RETRY_TIME = "2s"

log = structlog.get_logger("daily_otel_bridge.cli.demo")

# Webhooks in the demo: the simulator, as Daily, pushes its meetings' events (signed with
# this, a demo value) to the bridge's receiver on a free loopback port; they are printed
# beside the polled records (EventName daily.meeting.started, ...).
DEMO_WEBHOOK_SECRET = base64.b64encode(b"demo webhook secret, not secret").decode()
WEBHOOK_STREAM = "webhooks"


def with_webhooks(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the receiver on (a free loopback port) and the demo domain's secret."""
    config["webhooks"] = {"listen": "127.0.0.1:0"}
    for domain in config["domains"]:
        domain["webhook_secret"] = DEMO_WEBHOOK_SECRET
    return config


async def register_demo_hook(bridge: Any, api_url: str) -> None:
    """Once the receiver listens, create a hook at the simulator (`POST /webhooks`, as
    `daily-otel-bridge webhooks register` would at Daily); the demo goes on without
    webhooks if that fails."""
    import aiohttp

    for _ in range(200):
        if bridge.webhooks is not None:
            break
        await asyncio.sleep(0.05)
    else:
        return
    body = {"url": bridge.webhooks.url("demo"), "hmac": DEMO_WEBHOOK_SECRET}
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{api_url}/webhooks", json=body, headers=headers) as resp,
        ):
            if resp.status != 200:
                log.warning("demo webhook not registered", status=resp.status)
    except aiohttp.ClientError as exc:
        log.warning("demo webhook not registered", error=type(exc).__name__)


def demo_config(
    api_url: str, state_path: Path, endpoint: str | None, protocol: str
) -> dict[str, Any]:
    export: dict[str, Any] = {"protocol": "console"}
    if endpoint:
        export = {
            "protocol": protocol,
            "endpoint": endpoint,
            "compression": "gzip",
            "timeout": DEMO_EXPORT_TIMEOUT,
            "max_retry_time": DEMO_MAX_RETRY_TIME,
        }
    return {
        "state_path": str(state_path),
        "health": {"enabled": False},
        "export": export,
        "domains": [
            {
                "name": "demo",
                "api_key": DEMO_KEY,
                "api_url": api_url,
                "poll_interval": "2s",
                "initial_lookback": "1h",
                "lookback": "30s",
                "settle_lag": "1s",
                "session_grace": "1m",
                "max_quiet_interval": "10s",
                "requests_per_second": 10,
                # Issue 17's sources, each shown once: summaries of the ended meetings (on by
                # default), who is present now, the REST API's logs with scrubbed bodies.
                "meeting_summaries": True,
                "presence": True,
                "api_logs": True,
                "api_logs_bodies": True,
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class DemoSummary:
    read: int  # records and samples read from the simulator, every one counted
    reread: int  # read again and dropped: the overlap, re-read when the list changed there
    anchors: int  # read again as a page's anchor (one a request but a read's first)
    delivered: int  # acknowledged by the destination
    failed_exports: int  # export requests that failed after the exporter's retries
    requests: int  # /logs requests of session reads
    reads: int  # session reads

    def line(self, destination: str) -> str:
        per_read = f"{self.requests / self.reads:.1f}" if self.reads else "0"
        return (
            f"demo summary: {self.read} records read from the simulator in {self.requests} "
            f"requests ({self.reads} session reads, {per_read} requests each): "
            f"{self.delivered} delivered to {destination}, {self.anchors} read again as "
            f"page anchors (how the bridge sees the list move), {self.reread} read again "
            f"because the list changed; {self.failed_exports} export requests failed"
        )


def _total(counter: Counter, streams: tuple[str, ...] | None = None) -> int:
    return int(
        sum(
            sample.value
            for family in counter.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
            and (streams is None or sample.labels.get("stream") in streams)
        )
    )


# The streams read per session from GET /logs (what "records read" counts).
SESSION_STREAMS = ("logs", "metrics")


def sources_line(metrics: BridgeMetrics) -> str:
    """What the sources beside the call logs delivered (issue 17), one line."""
    present = sum(
        sample.value
        for family in metrics.participants_present.collect()
        for sample in family.samples
    )
    summaries = _total(metrics.records_exported, ("summaries",))
    api_logs = _total(metrics.records_exported, ("api_logs",))
    return (
        f"demo sources: {summaries} meeting summary records (one per ended meeting and one "
        f"per participant session), {api_logs} REST API log records (bodies scrubbed), "
        f"{present:g} participants present at the last GET /presence"
    )


def webhook_events(metrics: BridgeMetrics) -> int:
    """Webhook events exported (the simulator pushed them, the receiver stored them)."""
    return int(
        sum(
            sample.value
            for family in metrics.records_exported.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels.get("stream") == WEBHOOK_STREAM
        )
    )


def summarize(metrics: BridgeMetrics) -> DemoSummary:
    samples = [s for f in metrics.requests_per_read.collect() for s in f.samples]
    requests = int(sum(s.value for s in samples if s.name.endswith("_sum")))
    reads = int(sum(s.value for s in samples if s.name.endswith("_count")))
    return DemoSummary(
        read=_total(metrics.records_fetched),
        reread=_total(metrics.records_reread),
        anchors=_total(metrics.records_anchor),
        delivered=_total(metrics.records_exported, SESSION_STREAMS),
        failed_exports=_total(metrics.export_failures_by_kind),
        requests=requests,
        reads=reads,
    )


async def _demo(endpoint: str | None, protocol: str, duration: float | None, seed: int) -> int:
    from daily_otel_bridge.config.settings import parse_settings
    from daily_otel_bridge.service.app import Bridge
    from daily_otel_bridge.testing.simulator import SimulatorConfig, start_simulator

    sim_config = SimulatorConfig(
        seed=seed,
        domains={"demo": DEMO_KEY},
        meetings_per_domain=3,
        records_per_meeting=40,
        history=600.0,
        live=True,
        live_meetings=1,
        live_records_per_second=2.0,
        presence_lag=0.0,
        api_log_history=2,  # a few REST API records, enough to see one of each
        webhook_log_history=1,
        # Meetings that start and end while the demo runs: their webhooks are pushed.
        churn_meetings=2,
        churn_delay=2.0,
        churn_over=6.0,
        churn_min_duration=3.0,
        churn_max_duration=6.0,
        webhook_tick=0.1,
    )
    destination = f"{endpoint} ({protocol})" if endpoint else "the console"
    metrics = BridgeMetrics()
    with tempfile.TemporaryDirectory(prefix="daily-otel-bridge-demo-") as tmp:
        simulator = await start_simulator(sim_config)
        settings = parse_settings(
            with_webhooks(demo_config(simulator.url, Path(tmp) / "state.db", endpoint, protocol)),
            environ={},
        )
        err = sys.stderr
        until = f"for {duration:g}s" if duration is not None else "until Ctrl-C"
        err.write(
            f"Daily API simulator on {simulator.url}; "
            + (f"exporting to {destination}" if endpoint else "printing records here")
            + f", {until}.\n"
        )
        bridge = Bridge(settings, metrics=metrics)
        log.debug("demo starting", simulator=simulator.url, destination=destination)
        hook = asyncio.create_task(register_demo_hook(bridge, simulator.url))
        try:
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, bridge.request_stop)
            await bridge.run_forever()
        finally:
            hook.cancel()
            await asyncio.gather(hook, return_exceptions=True)
            await bridge.close()
            await simulator.close()
    summary = summarize(metrics)
    sys.stderr.write("\n" + summary.line(destination) + "\n")
    sys.stderr.write(sources_line(metrics) + "\n")
    sys.stderr.write(
        f"demo webhooks: {webhook_events(metrics)} events pushed by the simulator and "
        f"delivered to {destination} beside the polled records\n"
    )
    if summary.delivered == 0:
        sys.stderr.write(
            "nothing could be delivered"
            + (
                f": is an OTLP receiver listening on {endpoint} and speaking {protocol}? "
                "(the log lines above name the error)\n"
                if endpoint
                else "\n"
            )
        )
        return EXIT_NOTHING_DELIVERED
    sys.stderr.write(
        "Next: `daily-otel-bridge init config.yaml` writes the documented example config; set "
        "DAILY_API_KEY and your OTLP endpoint in it, check it with `daily-otel-bridge "
        "check-config --config config.yaml`, then `daily-otel-bridge run --config "
        "config.yaml`.\n"
    )
    return EXIT_OK


def run_demo(*, endpoint: str | None, protocol: str, duration: float | None, seed: int) -> int:
    try:
        return asyncio.run(_demo(endpoint, protocol, duration, seed))
    except KeyboardInterrupt:
        # The bridge turns Ctrl-C into a clean stop (and the summary) once it runs; this is a
        # Ctrl-C during start-up, before there is anything to summarize.
        return EXIT_OK
