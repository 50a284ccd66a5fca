"""The daemon's start-up line: what an operator needs to find the process and its probes.

`service/app.py` logs it once the health server listens (so the port is the real one when
`health.listen` asks for `:0`):

    log.info("bridge started", **startup_fields(settings, health_address=health.address))
"""

from __future__ import annotations

import platform
from typing import Any

from daily_otel_bridge import __version__
from daily_otel_bridge.config.settings import Settings


def startup_fields(settings: Settings, *, health_address: str | None) -> dict[str, Any]:
    """version, config path, enabled domains (with protocol), health address or "disabled".

    No endpoint URLs or headers: a URL can carry a token in its query, and the effective
    export settings are one `check-config` away, masked.
    """
    return {
        "version": __version__,
        "python": platform.python_version(),
        "config": None if settings.config_path is None else str(settings.config_path),
        "domains": [d.name for d in settings.domains if d.enabled],
        "protocols": sorted({d.export.protocol for d in settings.domains if d.enabled}),
        "health": health_address if health_address is not None else "disabled",
    }
