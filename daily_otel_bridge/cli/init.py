"""`daily-otel-bridge init [PATH]`: write the documented example configuration.

The example ships inside the package (`daily_otel_bridge/config/example.yaml`, identical to
`config/daily-otel-bridge.example.yaml` of the repository, a test keeps them equal), so that an
installed wheel can start a newcomer off without a checkout.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

import structlog

log = structlog.get_logger("daily_otel_bridge.cli.init")

EXIT_OK = 0
EXIT_EXISTS = 1
EXIT_CANNOT_WRITE = 1


def example_config() -> str:
    """The text of the documented example configuration."""
    return files("daily_otel_bridge.config").joinpath("example.yaml").read_text(encoding="utf-8")


def write_example(path: Path, *, force: bool = False) -> int:
    """Write the example to `path` (`-`: standard output); never overwrite without `force`."""
    text = example_config()
    if str(path) == "-":
        sys.stdout.write(text)
        return EXIT_OK
    if path.exists() and not force:
        sys.stderr.write(f"{path} exists; not overwritten (--force replaces it)\n")
        return EXIT_EXISTS
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL unless --force: a file appearing between the check and the write (another
        # `init`) is still not clobbered. 0600: the file is where the API key will go.
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        sys.stderr.write(f"{path} exists; not overwritten (--force replaces it)\n")
        return EXIT_EXISTS
    except OSError as exc:
        sys.stderr.write(f"cannot write {path}: {exc.strerror}\n")
        return EXIT_CANNOT_WRITE
    log.debug("example configuration written", path=str(path), force=force)
    sys.stderr.write(
        f"wrote {path}. Next: set DAILY_API_KEY (or api_key_file) and export.endpoint, then\n"
        f"  daily-otel-bridge check-config --config {path}\n"
        f"  daily-otel-bridge run --config {path}\n"
    )
    return EXIT_OK
