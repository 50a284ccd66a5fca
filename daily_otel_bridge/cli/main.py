"""Command line: run, check-config, demo, backfill, state, webhooks, init, simulator,
healthcheck.

Global options (`--config`, `--log-level`, `--log-format`) are accepted before or after the
subcommand: `build_parser` gives every subcommand a copy of them whose default is "not given",
so a value after the subcommand wins and one before it is not overwritten by a default.

Exit codes: 0 success, 1 a domain failed (`run --once`, `backfill`) or nothing could be
delivered (`demo`), 2 bad config or command line, 3 the state store cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import structlog

from daily_otel_bridge import __version__
from daily_otel_bridge.cli.errors import UsageError
from daily_otel_bridge.config.settings import (
    ConfigError,
    ExportSettings,
    Settings,
    load_settings,
    parse_duration,
    render_effective,
)
from daily_otel_bridge.service.logging import (
    LOG_FORMATS,
    LOG_LEVELS,
    LogFormat,
    configure_logging,
    parse_log_format,
    parse_log_level,
)
from daily_otel_bridge.state.base import StateError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STATE = 3
EXIT_USAGE = 2  # argparse's own code for a command-line mistake

PROG = "daily-otel-bridge"
CONFIG_ENV = "DAILY_OTEL_BRIDGE_CONFIG"
DEFAULT_CONFIG = Path("/etc/daily-otel-bridge/config.yaml")


# --------------------------------------------------------------------------------------------
# argument types: each raises ArgumentTypeError, which argparse reports with the option's name


def _level_arg(value: str) -> str:
    try:
        return parse_log_level(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _format_arg(value: str) -> LogFormat:
    try:
        return parse_log_format(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration_arg(value: str) -> float:
    """`2s`, `500ms`, `1m` or seconds, exactly as durations in the config file."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return seconds


def _endpoint_arg(value: str) -> str:
    # The same rules as `export.endpoint`, checked here so that a typo is reported as the
    # option it came from rather than as a configuration key the user never wrote.
    try:
        return ExportSettings(endpoint=value).endpoint
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors = getattr(exc, "errors", None)
        detail = errors()[0]["msg"] if callable(errors) else "is not a valid URL"
        raise argparse.ArgumentTypeError(str(detail)) from None


# --------------------------------------------------------------------------------------------
# the parser


CONFIG_HELP = f"the config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})"


def _add_global_options(
    parser: argparse.ArgumentParser, *, top: bool, with_config: bool = True
) -> None:
    """--config, --log-level, --log-format. On subcommands their default is SUPPRESS: absent
    from the namespace unless given there, so they never undo a value given before."""
    default: object = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options (before or after the subcommand)")
    if with_config:
        group.add_argument("--config", type=Path, metavar="PATH", default=default, help=CONFIG_HELP)
    group.add_argument(
        "--log-level",
        type=_level_arg,
        metavar="LEVEL",
        default=default,
        help=f"{', '.join(LOG_LEVELS)} (default: INFO)",
    )
    group.add_argument(
        "--log-format",
        type=_format_arg,
        metavar="FORMAT",
        default=default,
        help=f"{' or '.join(LOG_FORMATS)} (default: console on a terminal, json otherwise)",
    )


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand parser below `parser`, nested ones (state show) included.

    argparse has no public way to list subparsers; `_actions` and `_SubParsersAction` have
    been there unchanged since Python 3.2, and the unit tests exercise every path through here.
    """
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in seen:  # aliases map to the same parser
                    seen.add(id(child))
                    yield child
                    yield from _subparsers(child)


def _apply_global_options(parser: argparse.ArgumentParser) -> None:
    for child in _subparsers(parser):
        existing = child._option_string_actions.get("--config")
        if existing is not None:
            # A subcommand that declares its own `--config` (the `state` block, written before
            # the option became global) gets the global behaviour: optional, with the default.
            existing.required = False
            existing.default = argparse.SUPPRESS
            existing.help = CONFIG_HELP
        _add_global_options(child, top=False, with_config=existing is None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Ship Daily call logs to any OpenTelemetry backend over OTLP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument(
        "--once",
        action="store_true",
        help="read every session of every domain to its end, commit, then exit",
    )

    sub.add_parser("check-config", help="validate and print the effective config")

    demo = sub.add_parser("demo", help="run against the bundled Daily API simulator")
    demo.add_argument(
        "--endpoint", type=_endpoint_arg, help="send to this OTLP receiver instead of the console"
    )
    demo.add_argument(
        "--protocol", choices=["grpc", "http/protobuf"], default="grpc", help="with --endpoint"
    )
    demo.add_argument(
        "--duration", type=_duration_arg, help="stop after this long (10s, 2m, or seconds)"
    )
    demo.add_argument("--seed", type=int, default=1)

    backfill = sub.add_parser("backfill", help="re-export a range without moving the cursor")
    backfill.add_argument("--domain", required=True)
    target = backfill.add_mutually_exclusive_group(required=True)
    target.add_argument("--session", help="a meeting session id (mtgSessionId)")
    target.add_argument("--room", help="every session of this room")
    backfill.add_argument("--since", required=True, help="ISO-8601 time or a duration ago (2h)")
    backfill.add_argument("--until", help="ISO-8601 time or a duration ago; default now")

    init = sub.add_parser(
        "init",
        help="write the documented example config",
        description="Write the documented example configuration (every key, with comments).",
    )
    init.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="where to write it ('-' for standard output; default: the --config path)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    sub.add_parser(
        "simulator",
        help="serve the bundled Daily API simulator (see `simulator --help`)",
        add_help=False,
    )

    sub.add_parser(
        "healthcheck",
        help="probe the running daemon's /healthz on the configured health.listen",
        description="Exit 0 when the daemon on this host answers /healthz with 200, else 1 "
        "(for a container HEALTHCHECK; follows health.listen of the config).",
    )

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

    from daily_otel_bridge.cli.webhooks import add_webhooks_parser

    add_webhooks_parser(sub)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _parser()
    _apply_global_options(parser)
    return parser


def config_path(given: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """--config, else $DAILY_OTEL_BRIDGE_CONFIG (when not empty), else the default."""
    if given is not None:
        return given
    env = os.environ if environ is None else environ
    from_env = env.get(CONFIG_ENV, "").strip()
    return Path(from_env) if from_env else DEFAULT_CONFIG


def _simulator_argv(argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """(global options, simulator arguments) when the subcommand is `simulator`, else None.

    The simulator has its own parser; everything after the word goes to it untouched (argparse
    cannot pass unknown options through a subparser reliably).
    """
    takes_value = {"--config", "--log-level", "--log-format"}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "simulator":
            return list(argv[:index]), list(argv[index + 1 :])
        if arg in takes_value:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        return None  # another subcommand
    return None


def _load(path: Path, *, explicit: bool) -> Settings:
    if not path.exists():
        how = "" if explicit else f" (no --config given and ${CONFIG_ENV} is not set)"
        raise ConfigError(
            [
                (
                    str(path),
                    f"config file not found{how}; `{PROG} init {path}` writes a documented example",
                )
            ]
        )
    return load_settings(path)


def main(argv: Sequence[str] | None = None) -> int:
    # grpc's C core prints connection notices (GOAWAY, reconnects) straight to stderr, around
    # the structured log; the exporter reports what matters itself.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    raw = list(sys.argv[1:] if argv is None else argv)
    split = _simulator_argv(raw)
    parser = build_parser()
    if split is not None:
        args = parser.parse_args([*split[0], "simulator"])
    else:
        args = parser.parse_args(raw)
    configure_logging(args.log_level or "INFO", log_format=args.log_format)
    log = structlog.get_logger("daily_otel_bridge.cli.main")
    command = args.command
    if command in ("state", "webhooks"):
        command = f"{command} {getattr(args, command + '_command')}"
    explicit_config = args.config is not None or bool(os.environ.get(CONFIG_ENV, "").strip())
    path = config_path(args.config)
    log.debug("command line parsed", command=command, config=str(path), version=__version__)
    try:
        if args.command == "simulator":
            from daily_otel_bridge.testing.simulator import main as simulator_main

            assert split is not None
            return simulator_main(split[1], prog=f"{PROG} simulator")
        if args.command == "demo":
            from daily_otel_bridge.cli.demo import run_demo

            return run_demo(
                endpoint=args.endpoint,
                protocol=args.protocol,
                duration=args.duration,
                seed=args.seed,
            )
        if args.command == "init":
            from daily_otel_bridge.cli.init import write_example

            target = args.path if args.path is not None else path
            return write_example(target, force=args.force)
        if args.command == "state":
            # Before load_settings: state commands load the config without domain secrets.
            from daily_otel_bridge.cli.state import run_state_command

            args.config = path
            return run_state_command(args)
        if args.command == "webhooks":
            # Before _load: `register` writes a secret file the config may name but not have.
            from daily_otel_bridge.cli.webhooks import run_webhooks_command

            if not path.exists():
                _load(path, explicit=explicit_config)  # the same "not found" message
            return run_webhooks_command(args, path)
        settings = _load(path, explicit=explicit_config)
        log.debug(
            "configuration loaded",
            config=str(settings.config_path),
            domains=[d.name for d in settings.domains if d.enabled],
        )
        if args.command == "check-config":
            if settings.state_url is None:
                # A typo in state_path would start a fresh state elsewhere: exit 3 here too.
                from daily_otel_bridge.state.sqlite import check_state_directory

                check_state_directory(settings.state_path)
            sys.stdout.write(render_effective(settings))
            return EXIT_OK
        if args.command == "healthcheck":
            from daily_otel_bridge.cli.probe import probe_health

            return probe_health(settings)
        if args.command == "run":
            return asyncio.run(_run(settings, once=args.once))
        if args.command == "backfill":
            from daily_otel_bridge.cli.backfill import check_backfill_args
            from daily_otel_bridge.pipeline.backfill import run_backfill

            checked = asyncio.run(
                check_backfill_args(
                    settings,
                    domain=args.domain,
                    session=args.session,
                    since=args.since,
                    until=args.until,
                )
            )
            if not checked:
                return EXIT_FAILED
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
    except UsageError as exc:
        sys.stderr.write(f"{PROG} {command}: command-line error: {exc}\n")
        return EXIT_USAGE
    except ConfigError as exc:
        sys.stderr.write(format_config_error(exc))
        # Docker reserves a HEALTHCHECK's exit code 2; a config the probe cannot read means
        # "unhealthy" there.
        return EXIT_FAILED if args.command == "healthcheck" else EXIT_CONFIG
    except StateError as exc:
        log.error("state store unusable", error=str(exc))
        return EXIT_STATE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_CONFIG


def format_config_error(exc: ConfigError) -> str:
    """One line for one problem (`configuration error: health.listen: ...`), else a list."""
    text = str(exc)
    if "\n" not in text:
        return f"configuration error: {text}\n"
    return f"configuration error:\n{text}\n"


async def _run(settings: Settings, *, once: bool) -> int:
    from daily_otel_bridge.service.app import Bridge

    bridge = Bridge(settings)
    try:
        if once:
            ok = await bridge.run_once()
            return EXIT_OK if ok else EXIT_FAILED
        await bridge.run_forever()
        return EXIT_OK
    finally:
        await bridge.close()
