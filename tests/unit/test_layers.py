"""The pure modules stay pure: no network, file, database or clock imports.

A table of module -> forbidden imports, checked on the source with `ast`, so that a
convenient shortcut (an aiohttp call in the mapping, a clock read in the cursor) fails here
rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daily_otel_bridge"

IO_MODULES = {"aiohttp", "grpc", "sqlite3", "socket", "subprocess", "urllib", "requests", "os"}

PURE = {
    "core/mapping.py": IO_MODULES | {"time"},
    "core/metrics_mapping.py": IO_MODULES | {"time"},
    "core/cursor.py": IO_MODULES | {"time"},
    "core/encoding.py": IO_MODULES - {"os"} | {"time"},
    "core/records.py": IO_MODULES | {"time"},
    "core/console.py": IO_MODULES | {"time"},
    "core/secrets.py": IO_MODULES | {"time"},
    # The retry loop's default clock and sleep are `time.monotonic` and `asyncio.sleep`.
    "core/retry.py": IO_MODULES,
}

# Only this module talks OTLP over the wire.
OTLP_TRANSPORT_ONLY_IN = {"otlp/transport.py", "testing/otlp_receiver.py", "testing/rotel.py"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(("module", "forbidden"), sorted(PURE.items()))
def test_pure_modules_import_no_io(module: str, forbidden: set[str]) -> None:
    found = imported_roots(PACKAGE / module) & forbidden
    assert not found, f"{module} imports {sorted(found)}"


def test_only_the_transport_module_uses_grpc() -> None:
    users = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "grpc" in imported_roots(path)
    }
    assert users <= OTLP_TRANSPORT_ONLY_IN
