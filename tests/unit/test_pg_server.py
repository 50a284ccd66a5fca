"""The throwaway PostgreSQL of the tests: missing binaries are a clear failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from daily_otel_bridge.testing.pg_server import PgUnavailable, find_bin_dir


def test_missing_server_binaries_say_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_config
    with pytest.raises(PgUnavailable, match="install Debian's postgresql package"):
        find_bin_dir(debian_root=tmp_path)


def test_pg_bin_or_a_debian_layout_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for major in ("13", "15"):
        bin_dir = tmp_path / major / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("initdb", "postgres"):
            (bin_dir / name).write_text("")
    monkeypatch.delenv("PG_BIN", raising=False)
    assert find_bin_dir(debian_root=tmp_path) == tmp_path / "15" / "bin"  # the newest
    monkeypatch.setenv("PG_BIN", str(tmp_path / "13" / "bin"))
    assert find_bin_dir(debian_root=tmp_path) == tmp_path / "13" / "bin"
