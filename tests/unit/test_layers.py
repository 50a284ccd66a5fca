"""The pure modules stay pure: no network, file, database or clock imports; and the
package's layers hold (the import-linter contracts in pyproject.toml).

A table of module -> forbidden imports, checked on the source with `ast`, so that a
convenient shortcut (an aiohttp call in the mapping, a clock read in the cursor) fails here
rather than in a review; and `lint-imports`, so that an import against the layers does too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "daily_otel_bridge"

IO_MODULES = {"aiohttp", "grpc", "sqlite3", "socket", "subprocess", "urllib", "requests", "os"}

PURE = {
    "core/mapping.py": IO_MODULES | {"time"},
    "core/metrics_mapping.py": IO_MODULES | {"time"},
    "core/cursor.py": IO_MODULES | {"time"},
    "core/encoding.py": IO_MODULES - {"os"} | {"time"},
    "core/records.py": IO_MODULES | {"time"},
    "core/console.py": IO_MODULES | {"time"},
    "core/ownership.py": IO_MODULES | {"time", "psycopg", "asyncio"},
    "core/secrets.py": IO_MODULES | {"time"},
    # The retry loop's default clock and sleep are `time.monotonic` and `asyncio.sleep`.
    "core/retry.py": IO_MODULES,
    # The config's pure steps; file reads stay in config/loading.py. `urllib.parse` is string
    # handling (URL splitting, percent-decoding), not the network.
    "config/durations.py": IO_MODULES | {"time"},
    "config/errors.py": IO_MODULES | {"time"},
    "config/otel_env.py": IO_MODULES - {"urllib"} | {"time"},
    "config/render.py": IO_MODULES | {"time"},
    "config/dsn.py": IO_MODULES - {"urllib"} | {"time"},
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


def test_import_linter_contracts_are_kept() -> None:
    # The console script of the test extra, next to this interpreter (CI runs the same one
    # after mypy); no cache, so the check never reads a stale graph or writes into the tree.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout
