"""Command line: run, check-config, demo, backfill, state.

Exit codes: 0 success, 1 a domain failed (`run --once`, `backfill`), 2 bad config or usage,
3 the state store cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from daily_otel_bridge import __version__
from daily_otel_bridge.config.settings import ConfigError, load_settings, render_effective
from daily_otel_bridge.service.logging import configure_logging
from daily_otel_bridge.state.base import StateError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STATE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daily-otel-bridge",
        description="Ship Daily call logs to any OpenTelemetry backend over OTLP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument(
        "--once", action="store_true", help="one full sweep of every domain, then exit"
    )

    check = sub.add_parser("check-config", help="validate and print the effective config")
    check.add_argument("--config", required=True, type=Path)

    demo = sub.add_parser("demo", help="run against the bundled Daily API simulator")
    demo.add_argument("--endpoint", help="send to this OTLP receiver instead of the console")
    demo.add_argument(
        "--protocol", choices=["grpc", "http/protobuf"], default="grpc", help="with --endpoint"
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--seed", type=int, default=1)

    backfill = sub.add_parser("backfill", help="re-export a range without moving the cursor")
    backfill.add_argument("--config", required=True, type=Path)
    backfill.add_argument("--domain", required=True)
    target = backfill.add_mutually_exclusive_group(required=True)
    target.add_argument("--session", help="a meeting session id (mtgSessionId)")
    target.add_argument("--room", help="every session of this room")
    backfill.add_argument("--since", required=True, help="ISO-8601 time or a duration ago (2h)")
    backfill.add_argument("--until", help="ISO-8601 time or a duration ago; default now")

    state = sub.add_parser("state", help="inspect, reset or migrate the cursor state")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    show = state_sub.add_parser("show", help="cursors and lag (and owners, on PostgreSQL)")
    show.add_argument("--config", required=True, type=Path)
    show.add_argument("--domain")
    reset = state_sub.add_parser("reset", help="forget cursors (the next run re-delivers)")
    reset.add_argument("--config", required=True, type=Path)
    reset.add_argument("--domain", required=True)
    reset.add_argument("--session")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    dead = state_sub.add_parser("dead-letters", help="records that could not be shipped")
    dead.add_argument("--config", required=True, type=Path)
    dead.add_argument("--domain")
    dead.add_argument("--limit", type=int, default=100)
    migrate = state_sub.add_parser(
        "migrate", help="copy a SQLite state into the PostgreSQL of state_url"
    )
    migrate.add_argument("--config", required=True, type=Path)
    migrate.add_argument(
        "--from", dest="source", required=True, type=Path, help="the SQLite state file"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # grpc's C core prints connection notices (GOAWAY, reconnects) straight to stderr, around
    # the structured log; the exporter reports what matters itself.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    log = structlog.get_logger("daily_otel_bridge.cli.main")
    try:
        if args.command == "demo":
            from daily_otel_bridge.cli.demo import run_demo

            return run_demo(
                endpoint=args.endpoint,
                protocol=args.protocol,
                duration=args.duration,
                seed=args.seed,
            )
        if args.command == "state":
            # Before load_settings: state commands load the config without domain secrets.
            from daily_otel_bridge.cli.state import run_state_command

            return run_state_command(args)
        settings = load_settings(args.config)
        if args.command == "check-config":
            sys.stdout.write(render_effective(settings))
            return EXIT_OK
        if args.command == "run":
            return asyncio.run(_run(settings, once=args.once))
        if args.command == "backfill":
            from daily_otel_bridge.pipeline.backfill import run_backfill

            return asyncio.run(
                run_backfill(
                    settings,
                    domain=args.domain,
                    session=args.session,
                    room=args.room,
                    since=args.since,
                    until=args.until,
                )
            )
    except ConfigError as exc:
        sys.stderr.write(f"configuration error:\n{exc}\n")
        return EXIT_CONFIG
    except StateError as exc:
        log.error("state store unusable", error=str(exc))
        return EXIT_STATE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_CONFIG


async def _run(settings: object, *, once: bool) -> int:
    from daily_otel_bridge.config.settings import Settings
    from daily_otel_bridge.service.app import Bridge

    assert isinstance(settings, Settings)
    bridge = Bridge(settings)
    try:
        if once:
            ok = await bridge.run_once()
            return EXIT_OK if ok else EXIT_FAILED
        await bridge.run_forever()
        return EXIT_OK
    finally:
        await bridge.close()
