"""`daily-otel-bridge state show | reset | dead-letters | migrate`: the cursor store, on
SQLite or PostgreSQL.

The settings are loaded without domain secrets (`load_settings(..., secrets=False)`): these
commands never talk to Daily or the backend, so `DAILY_API_KEY` need not be set.

Exit codes: 0 done, 1 declined at the prompt, 2 bad usage or config (an unknown domain, a
reset of a domain a replica runs), 3 the state store cannot be used (in use by a running
daemon, missing directory, unreachable PostgreSQL, a migration into a store that is not
empty).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from daily_otel_bridge.config.settings import ConfigError, Settings, load_settings
from daily_otel_bridge.state.base import (
    LeaseInfo,
    ReplicaInfo,
    SessionRow,
    StateAdmin,
    StateError,
)
from daily_otel_bridge.state.factory import copy_sqlite_into_postgres, open_store

EXIT_OK = 0
EXIT_DECLINED = 1
EXIT_USAGE = 2
EXIT_STATE = 3


class UsageError(Exception):
    """A mistake on the command line: one line, exit 2."""


def _iso_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def show(rows: list[SessionRow], now: float) -> str:
    """Where each session's acknowledged reads ended (`drained until`) and how long ago
    (`age`). The domain's *lag* (the oldest record visible at Daily and not acknowledged)
    needs what only the running daemon knows (which sessions are producing, what is in
    flight): `show_lags` asks it."""
    lines = [
        f"{'domain':<16} {'stream':<8} {'session':<38} {'room':<16} {'drained until':<21} "
        f"{'age':>8} {'seen':>6} state"
    ]
    for r in rows:
        lag = "-" if r.drained_until_ms is None else f"{now - r.drained_until_ms / 1000:.0f}s"
        state = "retired" if r.retired else ("ended" if r.ended_at_ms else "active")
        lines.append(
            f"{r.domain:<16} {r.stream:<8} {r.session_id:<38} {r.room[:16]:<16} "
            f"{_iso_ms(r.drained_until_ms):<21} {lag:>8} {r.seen:>6} {state}"
        )
    lines.append(f"{len(rows)} session cursor(s); the domain's lag is in /readyz and /metrics")
    return "\n".join(lines) + "\n"


def show_lags(settings: Settings, domain: str | None) -> str:
    """The domains' lag from the running daemon (so that `state show`, `/readyz` and
    `/metrics` say the same number), or why there is none."""
    from daily_otel_bridge.cli.probe import daemon_lags

    lags = daemon_lags(settings)
    if lags is None:
        return "lag: no daemon answers on health.listen (the lag is the running daemon's)\n"
    names = [domain] if domain is not None else sorted(lags)
    parts = []
    for name in names:
        lag = lags.get(name)
        parts.append(f"{name} " + ("-" if lag is None else f"{lag:.0f}s"))
    return "lag (the running daemon's /readyz and /metrics): " + ", ".join(parts) + "\n"


def show_owners(domains: list[str], leases: dict[str, LeaseInfo]) -> str:
    """Who runs each domain (PostgreSQL): owner, epoch (fencing token), lease left."""
    lines = [f"{'domain':<16} {'owner':<40} {'epoch':>6} lease"]
    for domain in domains:
        lease = leases.get(domain)
        if lease is None:
            lines.append(f"{domain:<16} {'-':<40} {'-':>6} never claimed")
            continue
        if lease.owner is None or lease.expires_in is None:
            owner, left = "-", "free"
        elif lease.expires_in <= 0:
            owner, left = lease.owner, f"expired {-lease.expires_in:.0f}s ago"
        else:
            owner, left = lease.owner, f"expires in {lease.expires_in:.0f}s"
        lines.append(f"{domain:<16} {owner[:40]:<40} {lease.epoch:>6} {left}")
    return "\n".join(lines) + "\n\n"


def show_replicas(replicas: list[ReplicaInfo]) -> str:
    lines = [f"{'replica':<40} {'version':<10} heartbeat"]
    for r in replicas:
        state = (
            f"{r.seconds_since_heartbeat:.0f}s ago"
            if r.expires_in > 0
            else f"gone ({r.seconds_since_heartbeat:.0f}s ago)"
        )
        lines.append(f"{r.replica_id[:40]:<40} {r.version[:10]:<10} {state}")
    return "\n".join(lines) + "\n\n"


async def show_inbox(store: StateAdmin, names: list[str], now: float) -> str:
    """The webhook events waiting per domain (nothing when none wait)."""
    lines = []
    for name in names:
        count, oldest = await store.inbox_stats(name)
        if count:
            age = "" if oldest is None else f", the oldest received {now - oldest:.0f}s ago"
            lines.append(f"inbox {name}: {count} webhook event(s) waiting{age}\n")
    return "".join(lines)


async def _domain_names(settings: Settings, store: StateAdmin, domain: str | None) -> list[str]:
    """`domain`, or every domain of the config or the store."""
    if domain is not None:
        return [domain]
    return sorted({d.name for d in settings.domains} | set(await store.domains()))


async def _known_domain(settings: Settings, store: StateAdmin, domain: str | None) -> None:
    if domain is None:
        return
    configured = [d.name for d in settings.domains]
    if domain in configured or domain in await store.domains():
        return
    raise UsageError(
        f"unknown domain {domain!r}: not in the config ({', '.join(configured)}) "
        "nor in the state store"
    )


async def _dead_letters(store: StateAdmin, domain: str | None, limit: int) -> None:
    for letter in await store.dead_letters(domain, limit=limit):
        sys.stdout.write(
            json.dumps(
                {
                    "domain": letter.domain,
                    "stream": letter.stream,
                    "session": letter.session_id,
                    "uid": letter.uid,
                    "reason": letter.reason,
                    "created_at": letter.created_at,
                    "raw": letter.raw,
                },
                ensure_ascii=False,
            )
            + "\n"
        )


async def _reset(store: StateAdmin, args: argparse.Namespace) -> int:
    what = f"domain {args.domain!r}" + (f", session {args.session!r}" if args.session else "")
    if not args.yes:
        if not sys.stdin.isatty():
            sys.stderr.write("refusing to reset without a terminal to confirm; add --yes\n")
            return EXIT_USAGE
        prompt = f"Forget the cursors of {what}? Its records will be sent again. [y/N] "
        if args.session is None:
            # Events still waiting in the inbox are gone with it: say so.
            prompt = (
                f"Forget the cursors, source positions and webhook inbox of {what}? Its "
                "records will be sent again, its waiting webhook events dropped. [y/N] "
            )
        answer = await asyncio.to_thread(input, prompt)
        if answer.strip().lower() not in ("y", "yes"):
            sys.stderr.write("nothing changed\n")
            return EXIT_DECLINED
    leases = await store.leases()
    lease = leases.get(args.domain)
    if lease is not None and lease.owner is not None and (lease.expires_in or 0) > 0:
        # Its owner keeps the cursors in memory and would write them back at its next
        # commit: the reset would silently not happen.
        raise UsageError(
            f"domain {args.domain!r} is running on replica {lease.owner}; stop it (or remove "
            "the domain from its config) before resetting"
        )
    count = await store.reset(args.domain, args.session)
    sys.stdout.write(f"reset {what}: {count} row(s) removed\n")
    return EXIT_OK


async def _migrate(settings: Settings, source: Path) -> int:
    if settings.state_url is None:
        raise UsageError("state migrate copies into PostgreSQL: set state_url in the config")
    counts, target = await copy_sqlite_into_postgres(settings, source)
    sys.stdout.write(
        f"copied {counts['domains']} domain(s), {counts['sessions']} session cursor(s), "
        f"{counts['delivered_blocks']} block(s) of delivered identities and "
        f"{counts['dead_letters']} dead letter(s) from {source} to {target}\n"
    )
    if counts["positions"] or counts["inbox"]:
        sys.stdout.write(
            f"and {counts['positions']} source position(s), {counts['inbox']} webhook "
            "event(s) (waiting, or remembered against repeats)\n"
        )
    return EXIT_OK


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.state_command == "migrate":
        return await _migrate(settings, args.source)
    store = await open_store(settings, writing=args.state_command == "reset")
    try:
        await _known_domain(settings, store, args.domain)
        if args.state_command == "show":
            rows = await store.session_rows(args.domain)
            names = await _domain_names(settings, store, args.domain)
            if settings.state_url is not None:
                sys.stdout.write(show_replicas(await store.replicas()))
                sys.stdout.write(show_owners(names, await store.leases()))
            sys.stdout.write(show(rows, time.time()))
            sys.stdout.write(await show_inbox(store, names, time.time()))
            sys.stdout.write(show_lags(settings, args.domain))
            return EXIT_OK
        if args.state_command == "dead-letters":
            await _dead_letters(store, args.domain, args.limit)
            return EXIT_OK
        return await _reset(store, args)
    finally:
        await store.close()


def run_state_command(args: argparse.Namespace) -> int:
    """Entry point of `state ...` (see `cli.main`)."""
    try:
        settings = load_settings(args.config, secrets=False)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error:\n{exc}\n")
        return EXIT_USAGE
    try:
        return asyncio.run(_run(settings, args))
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_USAGE
    except StateError as exc:
        # One line; the messages never carry a password (see state.postgres).
        sys.stderr.write(f"{exc}\n")
        return EXIT_STATE
