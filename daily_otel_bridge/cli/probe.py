"""`daily-otel-bridge healthcheck`: GET /healthz of the daemon on `health.listen`.

For a container HEALTHCHECK: it reads the same config as the daemon, so the probe follows the
configured port instead of a port written into the image.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import structlog

from daily_otel_bridge.config.settings import Settings
from daily_otel_bridge.service.health import format_address

log = structlog.get_logger("daily_otel_bridge.cli.probe")

PROBE_TIMEOUT = 4.0  # under Docker's default HEALTHCHECK --timeout of 30 s, and ours of 5 s
# A wildcard listen address is reachable on loopback; connecting *to* a wildcard is not
# portable.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def healthz_url(settings: Settings) -> str:
    host = settings.health.host
    host = _WILDCARD_TO_LOOPBACK.get(host, host)
    return f"http://{format_address(host, settings.health.port)}/healthz"


def probe_health(settings: Settings) -> int:
    """0 when /healthz answers 200; 1 otherwise (also when health is disabled: nothing to ask)."""
    if not settings.health.enabled:
        sys.stderr.write("healthcheck: health.enabled is false; the daemon serves no probe\n")
        return 1
    url = healthz_url(settings)
    log.debug("probing", url=url)
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as resp:  # noqa: S310 - http only
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"healthcheck: {url}: {type(exc).__name__}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"healthcheck: {url}: HTTP {status}\n")
        return 1
    return 0


def readyz_url(settings: Settings) -> str:
    return healthz_url(settings).removesuffix("/healthz") + "/readyz"


def daemon_lags(settings: Settings) -> dict[str, float | None] | None:
    """Each domain's lag as the running daemon's `/readyz` reports it (the number `/metrics`
    has too: one function computes both), or None when no daemon answers there."""
    if not settings.health.enabled:
        return None
    try:
        with urllib.request.urlopen(readyz_url(settings), timeout=2.0) as resp:  # noqa: S310
            body: Any = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503: not ready, but the body is the same report
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    domains = body.get("domains") if isinstance(body, dict) else None
    if not isinstance(domains, dict):
        return None
    return {
        str(name): (report.get("cursor_lag_seconds") if isinstance(report, dict) else None)
        for name, report in domains.items()
    }
