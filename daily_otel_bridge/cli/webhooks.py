"""`webhooks register | status | reactivate`: the operator's side of Daily's webhooks.

`register` creates the domain's hook at Daily with a fresh secret (base64 of 32 random bytes)
that it writes, mode 0600, to the domain's `webhook_secret_file` *before* asking Daily, so that
a running receiver already knows it when Daily sends its verification POST (the receiver
re-reads a secret file that changed). If Daily refuses, the file gets its old content back.
The secret is printed only with `--print-secret`.

`status` shows each hook and says plainly when Daily gave one up (`FAILED`: with
`circuit-breaker` retries, 3 failed deliveries in a row stop all events), with the command
that fixes it; it exits 1 when a hook is FAILED, for scripts. `reactivate` re-activates the
FAILED hooks (or the one `--uuid` names).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from daily_otel_bridge.cli.errors import UsageError
from daily_otel_bridge.config.settings import DomainSettings, Settings, load_settings
from daily_otel_bridge.daily.client import DailyApiError
from daily_otel_bridge.daily.webhooks_api import RETRY_TYPES, Hook, RetryType, WebhooksApi
from daily_otel_bridge.service.logging import register_secrets

__all__ = ["add_webhooks_parser", "run_webhooks_command"]

PROG = "daily-otel-bridge"
EXIT_OK = 0
EXIT_FAILED = 1


def add_webhooks_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `webhooks` subcommand and its three commands."""
    hooks = sub.add_parser("webhooks", help="create, inspect and re-activate Daily's webhooks")
    cmds = hooks.add_subparsers(dest="webhooks_command", required=True)
    register = cmds.add_parser(
        "register",
        help="create the domain's webhook at Daily, with a fresh secret",
        description="Create the domain's webhook at Daily (POST /webhooks) with a fresh secret, "
        "written (mode 0600) to the domain's webhook_secret_file. The URL must already reach "
        "this bridge's receiver: Daily checks it before creating the hook.",
    )
    register.add_argument("--domain", required=True)
    register.add_argument(
        "--url", required=True, help="the public URL of <webhooks.path_prefix>/<domain>"
    )
    register.add_argument(
        "--events",
        nargs="+",
        metavar="TYPE",
        help="event types to subscribe to (default: Daily's default set)",
    )
    register.add_argument(
        "--retry-type",
        choices=RETRY_TYPES,
        default="exponential",
        help="Daily's retry mode (default: exponential; circuit-breaker stops the hook "
        "after 3 failed deliveries)",
    )
    register.add_argument(
        "--print-secret",
        action="store_true",
        help="print the new secret (needed when the domain has no webhook_secret_file)",
    )
    status = cmds.add_parser("status", help="each domain's webhooks and their state")
    status.add_argument("--domain")
    reactivate = cmds.add_parser("reactivate", help="re-activate a FAILED webhook")
    reactivate.add_argument("--domain", required=True)
    reactivate.add_argument("--uuid", help="this hook (default: every FAILED hook)")


def run_webhooks_command(args: argparse.Namespace, config: Path, out: TextIO | None = None) -> int:
    """Run one `webhooks` command; UsageError for a mistaken argument, ConfigError from the
    config, and exit 1 (with the reason on stderr) when Daily could not be asked."""
    stdout = out or sys.stdout
    # The webhook secret files are not read: `register` writes them, the others do not
    # need them (and must work while a file is missing).
    settings = load_settings(config, webhook_secrets=False)
    try:
        if args.webhooks_command == "register":
            return asyncio.run(
                register(
                    settings,
                    domain=args.domain,
                    url=args.url,
                    events=args.events or (),
                    retry_type=args.retry_type,
                    print_secret=args.print_secret,
                    out=stdout,
                )
            )
        if args.webhooks_command == "status":
            return asyncio.run(status(settings, domain=args.domain, out=stdout))
        return asyncio.run(reactivate(settings, domain=args.domain, uuid=args.uuid, out=stdout))
    except DailyApiError as exc:
        sys.stderr.write(f"{PROG} webhooks {args.webhooks_command}: {exc}\n")
        return EXIT_FAILED


def _domain(settings: Settings, name: str) -> DomainSettings:
    for domain in settings.domains:
        if domain.name.lower() == name.lower():
            return domain
    names = ", ".join(d.name for d in settings.domains)
    raise UsageError(f"--domain {name!r} is not in the config (it has: {names})")


def _api(domain: DomainSettings) -> WebhooksApi:
    return WebhooksApi(
        domain=domain.name,
        api_url=domain.api_url,
        api_key=domain.api_key.get_secret_value(),
        timeout=domain.request_timeout,
        ca_file=domain.ca_file,
    )


def new_secret() -> str:
    """A fresh webhook secret: base64 of 32 random bytes (Daily wants base64)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def write_secret_file(path: Path, secret: str) -> None:
    """Replace `path` atomically with `secret`, mode 0600 from the first byte (the file is
    created with that mode, never chmod-ed after the secret is in it)."""
    if not path.parent.is_dir():
        raise UsageError(f"webhook_secret_file {path}: its directory does not exist")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def register(
    settings: Settings,
    *,
    domain: str,
    url: str,
    events: Sequence[str],
    retry_type: RetryType,
    print_secret: bool,
    out: TextIO,
) -> int:
    chosen = _domain(settings, domain)
    path = chosen.webhook_secret_file
    if path is None and not print_secret:
        raise UsageError(
            f"domain {chosen.name!r} has no webhook_secret_file in the config, so the new "
            "secret would be lost: add `webhook_secret_file: PATH` to the domain (the secret is "
            "written there), or pass --print-secret to see it and store it yourself"
        )
    if not url.startswith(("https://", "http://")):
        raise UsageError("--url must be an http:// or https:// URL")
    secret = new_secret()
    register_secrets([secret])
    hooks = settings.webhooks
    basic_auth = None
    if hooks is not None and hooks.basic_auth_user and hooks.basic_auth_password:
        # Daily sends these credentials with each POST; the receiver requires them.
        pair = f"{hooks.basic_auth_user}:{hooks.basic_auth_password.get_secret_value()}"
        basic_auth = base64.b64encode(pair.encode()).decode("ascii")
    previous: str | None = None
    if path is not None:
        with contextlib.suppress(OSError):
            previous = path.read_text(encoding="utf-8")
        write_secret_file(path, secret)
    async with _api(chosen) as api:
        try:
            existing = await api.list_hooks()
            hook = await api.create(
                url=url,
                secret=secret,
                retry_type=retry_type,
                event_types=events,
                basic_auth=basic_auth,
            )
        except BaseException:
            if path is not None:
                _restore(path, previous)
            raise
    where = f"written to {path} (mode 600)" if path is not None else "not written anywhere"
    out.write(
        f"{chosen.name}: created webhook {hook.uuid} for {hook.url} "
        f"(state {hook.state}, retryType {hook.retry_type or retry_type}); the secret is {where}\n"
    )
    if print_secret:
        out.write(f"secret: {secret}\n")
    if existing:
        out.write(
            f"note: {chosen.name} already had {len(existing)} webhook(s) signing with an older "
            "secret, which the receiver forgets at its next restart: delete them at Daily "
            f"({', '.join(h.uuid for h in existing)})\n"
        )
    return EXIT_OK


def _restore(path: Path, previous: str | None) -> None:
    """Daily refused: the file gets back what it held (or goes, if it did not exist)."""
    with contextlib.suppress(OSError):
        if previous is None:
            path.unlink()
        else:
            write_secret_file(path, previous.strip())


def _describe(hook: Hook) -> str:
    failed = "?" if hook.failed_count is None else str(hook.failed_count)
    events = ", ".join(hook.event_types) or "Daily's default set"
    return (
        f"  {hook.uuid}  {hook.state}  failedCount={failed}  "
        f"retryType={hook.retry_type or '?'}  {hook.url}\n    events: {events}\n"
    )


async def status(settings: Settings, *, domain: str | None, out: TextIO) -> int:
    chosen = [_domain(settings, domain)] if domain else list(settings.domains)
    failed_any = False
    for entry in chosen:
        async with _api(entry) as api:
            hooks = await api.list_hooks()
        if not hooks:
            out.write(
                f"{entry.name}: no webhook (create one: `{PROG} webhooks register "
                f"--domain {entry.name} --url URL`)\n"
            )
            continue
        out.write(f"{entry.name}: {len(hooks)} webhook(s)\n")
        for hook in hooks:
            out.write(_describe(hook))
            if hook.state == "FAILED":
                failed_any = True
                out.write(
                    "    FAILED: Daily has stopped sending this hook's events after failed "
                    "deliveries; events since then are lost to the push side (polling still "
                    "reads the logs). Make sure the receiver answers, then run "
                    f"`{PROG} webhooks reactivate --domain {entry.name}`\n"
                )
    return EXIT_FAILED if failed_any else EXIT_OK


async def reactivate(settings: Settings, *, domain: str, uuid: str | None, out: TextIO) -> int:
    chosen = _domain(settings, domain)
    async with _api(chosen) as api:
        hooks = await api.list_hooks()
        if uuid is not None:
            targets = [h for h in hooks if h.uuid == uuid]
            if not targets:
                known = ", ".join(h.uuid for h in hooks) or "none"
                raise UsageError(f"--uuid {uuid!r} is not a webhook of {chosen.name} ({known})")
        else:
            targets = [h for h in hooks if h.state == "FAILED"]
            if not targets:
                out.write(f"{chosen.name}: no FAILED webhook; nothing to re-activate\n")
                return EXIT_OK
        for hook in targets:
            after = await api.reactivate(hook)
            out.write(f"{chosen.name}: webhook {after.uuid} is now {after.state} ({after.url})\n")
    return EXIT_OK
