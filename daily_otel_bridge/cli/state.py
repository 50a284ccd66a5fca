"""`daily-otel-bridge state show | reset | dead-letters`: read and reset the cursor store."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from daily_otel_bridge.config.settings import Settings
from daily_otel_bridge.state.sqlite import SqliteCursorStore


def _iso_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def show(store: SqliteCursorStore, domain: str | None, now: float) -> str:
    rows = store.session_rows(domain)
    lines = [
        f"{'domain':<16} {'stream':<8} {'session':<38} {'room':<16} {'drained until':<21} "
        f"{'lag':>8} {'seen':>6} state"
    ]
    for r in rows:
        lag = "-" if r.drained_until_ms is None else f"{now - r.drained_until_ms / 1000:.0f}s"
        state = "retired" if r.retired else ("ended" if r.ended_at_ms else "active")
        lines.append(
            f"{r.domain:<16} {r.stream:<8} {r.session_id:<38} {r.room[:16]:<16} "
            f"{_iso_ms(r.drained_until_ms):<21} {lag:>8} {r.seen:>6} {state}"
        )
    lines.append(f"{len(rows)} session cursor(s)")
    return "\n".join(lines) + "\n"


def run_state_command(settings: Settings, args: argparse.Namespace) -> int:
    store = SqliteCursorStore(settings.state_path)
    try:
        if args.state_command == "show":
            sys.stdout.write(show(store, args.domain, time.time()))
            return 0
        if args.state_command == "dead-letters":
            for letter in store.dead_letters(args.domain, limit=args.limit):
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
            return 0
        # reset
        what = f"domain {args.domain!r}" + (f", session {args.session!r}" if args.session else "")
        if not args.yes:
            if not sys.stdin.isatty():
                sys.stderr.write("refusing to reset without a terminal to confirm; add --yes\n")
                return 2
            answer = input(f"Forget the cursors of {what}? Its records will be sent again. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                sys.stderr.write("nothing changed\n")
                return 1
        count = store.reset(args.domain, args.session)
        sys.stdout.write(f"reset {what}: {count} row(s) removed\n")
        return 0
    finally:
        store.close()
