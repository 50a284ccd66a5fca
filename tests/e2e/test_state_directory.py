"""A state directory that does not exist is an error for every command that uses it (a typo
in `state_path` must not start a fresh, empty state that ships history again)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.faults._support import cli


def test_check_config_and_state_show_refuse_a_missing_state_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "state.db"
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_path": str(missing),
                "health": {"enabled": False},
                "domains": [{"name": "acme", "api_key": "k-0123456789"}],
            }
        )
    )
    for args in (["check-config"], ["state", "show"]):
        result = cli(*args, "--config", str(config))
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert "no-such-dir" in result.stderr
        assert not missing.parent.exists(), "nothing may create it"
