"""The simulator's command line: ``python -m daily_otel_bridge.testing.simulator`` and
``daily-otel-bridge simulator`` (flags map one to one onto ``SimulatorConfig``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from .config import SimulatorConfig
from .runner import start_simulator


def _domain_arg(value: str) -> tuple[str, str]:
    name, sep, key = value.partition("=")
    if not sep or not name or not key:
        raise argparse.ArgumentTypeError("expected NAME=KEY")
    return name, key


def _duration_arg(value: str) -> float:
    # The daemon's own duration syntax, so a bench passes the same strings to both.
    from daily_otel_bridge.config.settings import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog or "python -m daily_otel_bridge.testing.simulator",
        description="Serve a deterministic imitation of Daily's /v1/meetings and /v1/logs.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--domain",
        type=_domain_arg,
        action="append",
        metavar="NAME=KEY",
        help="a domain and its API key (repeatable; default demo=demo-key)",
    )
    p.add_argument("--meetings", type=int, default=5, help="meetings per domain")
    p.add_argument("--records", type=int, default=200, help="records per meeting")
    p.add_argument("--participants", type=int, default=3, help="participants per meeting")
    p.add_argument("--tie-ratio", type=float, default=0.3)
    p.add_argument("--duplicate-ratio", type=float, default=0.0)
    p.add_argument("--late-ratio", type=float, default=0.0)
    p.add_argument("--late-delay", type=float, default=0.0, help="seconds")
    p.add_argument("--base-time", type=float, default=None, help="Unix seconds (default: now)")
    p.add_argument("--history", type=float, default=1800.0, help="seconds of past meetings")
    p.add_argument("--live", action="store_true", help="add ongoing meetings")
    p.add_argument("--live-meetings", type=int, default=1)
    p.add_argument("--live-rate", type=float, default=5.0, help="records/s per live meeting")
    p.add_argument("--live-duration", type=float, default=None, help="seconds")
    p.add_argument(
        "--live-silent-meetings", type=int, default=0, help="ongoing meetings without records"
    )
    add_churn_arguments(p)
    add_domain_sources_arguments(p)
    add_webhook_arguments(p)
    p.add_argument("--no-metrics", action="store_true", help="includeMetrics gives []")
    p.add_argument("--rate-limit", type=float, default=None, help="requests/s per domain")
    p.add_argument("--rate-burst", type=float, default=None)
    p.add_argument("--no-retry-after", action="store_true")
    p.add_argument("--max-limit", type=int, default=1000, help="largest page of /logs")
    p.add_argument(
        "--latency", type=_duration_arg, default=0.0, help="answer delay, e.g. 150ms (default 0)"
    )
    p.add_argument(
        "--latency-jitter", type=_duration_arg, default=0.0, help="+- uniform, e.g. 30ms"
    )
    p.add_argument("--error-429-ratio", type=float, default=0.0, help="share answering 429")
    p.add_argument("--error-5xx-ratio", type=float, default=0.0, help="share answering 5xx")
    p.add_argument(
        "--error-retry-after-ratio",
        type=float,
        default=0.5,
        help="share of the random 429s with Retry-After",
    )
    p.add_argument("--short-pages", action="store_true")
    p.add_argument("--start-exclusive", action="store_true", help="startTime is exclusive")
    p.add_argument("--end-exclusive", action="store_true", help="endTime is exclusive")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    return p


def add_churn_arguments(p: argparse.ArgumentParser) -> None:
    """``--live-silent-words*`` and ``--churn-*`` (shared with the bench's simulator server)."""
    p.add_argument(
        "--live-silent-words",
        type=int,
        default=0,
        help="records each silent meeting logged before the start (default 0)",
    )
    p.add_argument(
        "--live-silent-words-ago",
        type=float,
        default=30.0,
        help="seconds before the start those records were logged (default 30)",
    )
    p.add_argument("--churn-meetings", type=int, default=0, help="meetings starting during the run")
    p.add_argument(
        "--churn-over", type=float, default=150.0, help="seconds their starts spread over"
    )
    p.add_argument(
        "--churn-delay", type=float, default=0.0, help="seconds before the first one starts"
    )
    p.add_argument("--churn-min-duration", type=float, default=15.0, help="seconds")
    p.add_argument("--churn-max-duration", type=float, default=60.0, help="seconds")
    p.add_argument("--churn-rate", type=float, default=2.0, help="records/s while ongoing")
    p.add_argument(
        "--churn-late-ratio", type=float, default=0.2, help="share uploading a late batch"
    )
    p.add_argument("--churn-late-records", type=int, default=20, help="records in that batch")
    p.add_argument(
        "--churn-late-delay", type=float, default=10.0, help="seconds after the end it appears"
    )


def add_domain_sources_arguments(p: argparse.ArgumentParser) -> None:
    """What `GET /presence` and `GET /logs/api` serve (issue 17's sources)."""
    p.add_argument(
        "--presence-lag",
        type=float,
        default=15.0,
        help="seconds /presence lags behind (answers as of the last multiple; default 15)",
    )
    p.add_argument(
        "--api-log-history",
        type=int,
        default=30,
        help="past REST API calls /logs/api lists at start (source=api; default 30)",
    )
    p.add_argument(
        "--webhook-log-history",
        type=int,
        default=12,
        help="past webhook deliveries /logs/api lists at start (source=webhook; default 12)",
    )


def domain_sources_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "presence_lag": args.presence_lag,
        "api_log_history": args.api_log_history,
        "webhook_log_history": args.webhook_log_history,
    }


def add_webhook_arguments(p: argparse.ArgumentParser) -> None:
    """``--webhook-*``: how the simulated Daily pushes webhooks to the hooks created with
    ``POST /v1/webhooks`` (``retryType`` chooses the mode per hook)."""
    p.add_argument(
        "--webhook-timeout",
        type=_duration_arg,
        default=5.0,
        help="a delivery not answered within this is a failure (default 5s)",
    )
    p.add_argument(
        "--webhook-backoff",
        type=_duration_arg,
        default=60.0,
        help="exponential mode: first retry after this, doubling (default 60s)",
    )
    p.add_argument(
        "--webhook-max-attempts",
        type=int,
        default=5,
        help="exponential mode: tries per event before it is dropped (default 5)",
    )
    p.add_argument(
        "--webhook-failure-threshold",
        type=int,
        default=3,
        help="circuit-breaker mode: failures in a row that put the hook in FAILED (default 3)",
    )
    p.add_argument(
        "--webhook-tick",
        type=_duration_arg,
        default=0.25,
        help="how often new events are looked for (default 250ms)",
    )


def webhook_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The webhook keys of ``SimulatorConfig`` from the ``--webhook-*`` flags."""
    return {
        "webhook_timeout": args.webhook_timeout,
        "webhook_backoff": args.webhook_backoff,
        "webhook_max_attempts": args.webhook_max_attempts,
        "webhook_failure_threshold": args.webhook_failure_threshold,
        "webhook_tick": args.webhook_tick,
    }


def churn_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The churn keys of ``SimulatorConfig`` from the ``--churn-*`` flags (shared with the
    bench's simulator server)."""
    return {
        "live_silent_words": args.live_silent_words,
        "live_silent_words_ago": args.live_silent_words_ago,
        "churn_meetings": args.churn_meetings,
        "churn_over": args.churn_over,
        "churn_delay": args.churn_delay,
        "churn_min_duration": args.churn_min_duration,
        "churn_max_duration": args.churn_max_duration,
        "churn_rate": args.churn_rate,
        "churn_late_ratio": args.churn_late_ratio,
        "churn_late_records": args.churn_late_records,
        "churn_late_delay": args.churn_late_delay,
    }


def _config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    domains = dict(args.domain) if args.domain else {"demo": "demo-key"}
    return SimulatorConfig(
        seed=args.seed,
        domains=domains,
        meetings_per_domain=args.meetings,
        records_per_meeting=args.records,
        participants_per_meeting=args.participants,
        tie_ratio=args.tie_ratio,
        duplicate_ratio=args.duplicate_ratio,
        late_ratio=args.late_ratio,
        late_delay=args.late_delay,
        base_time=args.base_time,
        history=args.history,
        live=args.live,
        live_meetings=args.live_meetings,
        live_records_per_second=args.live_rate,
        live_duration=args.live_duration,
        live_silent_meetings=args.live_silent_meetings,
        **churn_kwargs(args),
        **domain_sources_kwargs(args),
        **webhook_kwargs(args),
        include_metrics_samples=not args.no_metrics,
        rate_limit_per_second=args.rate_limit,
        rate_burst=args.rate_burst,
        retry_after=not args.no_retry_after,
        max_limit=args.max_limit,
        short_pages=args.short_pages,
        start_time_inclusive=not args.start_exclusive,
        end_time_inclusive=not args.end_exclusive,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        error_429_ratio=args.error_429_ratio,
        error_5xx_ratio=args.error_5xx_ratio,
        error_retry_after_ratio=args.error_retry_after_ratio,
    )


async def _serve(config: SimulatorConfig, host: str, port: int, max_seconds: float) -> int:
    running = await start_simulator(config, host, port)
    # The first stdout line is the contract scripts and tests read; the hint goes to stderr.
    print(f"listening on {running.url}", flush=True)
    for name, key in config.domains.items():
        print(
            f"domain {name}: set `api_url: {running.url}` and `api_key: {key}` in its config "
            f"section; stops after {max_seconds:g}s or on Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)
    finally:
        await running.close()
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The simulator's command line (also `daily-otel-bridge simulator ...`)."""
    args = _parser(prog).parse_args(argv)
    try:
        config = _config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(config, args.host, args.port, args.max_seconds))
