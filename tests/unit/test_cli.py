"""The command line's contract: global options anywhere, validated values, defaults, `init`,
and mistakes reported as command-line mistakes."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
import yaml

from daily_otel_bridge.cli.init import example_config
from daily_otel_bridge.cli.main import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    build_parser,
    config_path,
    format_config_error,
    main,
)
from daily_otel_bridge.config.settings import ConfigError, parse_settings
from daily_otel_bridge.service.logging import configure_logging
from daily_otel_bridge.service.startup import startup_fields

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "bridge.yaml"
    doc = {
        "state_path": str(tmp_path / "state.db"),
        "export": {"protocol": "console"},
        "domains": [{"name": "acme", "api_key": "k" * 20, "api_url": "http://127.0.0.1:9/v1"}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "--log-format", "json", "--config", "c.yaml", "check-config"],
        ["check-config", "--log-level", "debug", "--log-format", "json", "--config", "c.yaml"],
        ["--log-level", "debug", "check-config", "--log-format", "json", "--config", "c.yaml"],
        ["--config", "c.yaml", "state", "show", "--log-level", "DEBUG", "--log-format", "JSON"],
        ["state", "show", "--config", "c.yaml", "--log-level", "debug", "--log-format", "json"],
        ["--log-level", "debug", "--log-format", "json", "state", "--config", "c.yaml", "show"],
    ],
)
def test_global_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.log_level, args.log_format) == (Path("c.yaml"), "DEBUG", "json")


def test_an_option_after_the_subcommand_wins_over_one_before() -> None:
    args = build_parser().parse_args(["--log-level", "ERROR", "run", "--log-level", "DEBUG"])
    assert args.log_level == "DEBUG"


def test_global_defaults_when_not_given() -> None:
    args = build_parser().parse_args(["run"])
    assert (args.config, args.log_level, args.log_format) == (None, None, None)
    args = build_parser().parse_args(["state", "show"])  # its --config is optional now
    assert args.config is None


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--log-level", "verbose", "run"], "--log-level"),
        (["run", "--log-format", "xml"], "--log-format"),
        (["demo", "--duration", "soon"], "--duration"),
        (["demo", "--duration", "0s"], "--duration"),
        (["demo", "--endpoint", "localhost:4317"], "--endpoint"),
    ],
)
def test_bad_values_are_command_line_errors_naming_the_option(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err
    assert "configuration error" not in err


def test_durations_on_the_command_line_read_like_the_config() -> None:
    for text, seconds in (("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("3", 3.0)):
        assert build_parser().parse_args(["demo", "--duration", text]).duration == seconds


def test_config_path_default_and_environment() -> None:
    assert config_path(None, {}) == DEFAULT_CONFIG == Path("/etc/daily-otel-bridge/config.yaml")
    assert config_path(None, {CONFIG_ENV: "/srv/b.yaml"}) == Path("/srv/b.yaml")
    assert config_path(None, {CONFIG_ENV: "  "}) == DEFAULT_CONFIG
    assert config_path(Path("x.yaml"), {CONFIG_ENV: "/srv/b.yaml"}) == Path("x.yaml")


def test_config_from_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(write_config(tmp_path)))
    assert main(["check-config"]) == 0
    assert "name: acme" in capsys.readouterr().out


def test_a_missing_default_config_says_where_it_looked_and_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setattr("daily_otel_bridge.cli.main.DEFAULT_CONFIG", tmp_path / "none.yaml")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(tmp_path / "none.yaml") in err
    assert CONFIG_ENV in err
    assert "daily-otel-bridge init" in err


def test_debug_and_json_log_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["check-config", "--config", str(config), "--log-level", "debug"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    events = {e["event"]: e for e in lines}
    assert events["configuration loaded"]["level"] == "debug"
    assert events["configuration loaded"]["domains"] == ["acme"]
    assert main(["check-config", "--config", str(config)]) == 0
    assert "configuration loaded" not in capsys.readouterr().err  # INFO by default


def test_log_format_console_and_json() -> None:
    import structlog

    for fmt, is_json in (("json", True), ("console", False)):
        stream = io.StringIO()
        configure_logging("INFO", stream=stream, log_format=fmt)  # type: ignore[arg-type]
        structlog.get_logger("t").info("hello", n=1)
        line = stream.getvalue().strip()
        if is_json:
            assert json.loads(line)["event"] == "hello"
        else:
            assert "hello" in line
            assert not line.startswith("{")
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("verbose", stream=io.StringIO())


def test_one_problem_is_one_line() -> None:
    one = format_config_error(ConfigError([("health.listen", "cannot listen on x")]))
    assert one == "configuration error: health.listen: cannot listen on x\n"
    two = format_config_error(ConfigError([("a", "x"), ("b", "y")]))
    assert two.splitlines() == ["configuration error:", "a: x", "b: y"]


# --- init ------------------------------------------------------------------------------------


def test_the_packaged_example_is_the_documented_one() -> None:
    documented = (REPO / "config" / "daily-otel-bridge.example.yaml").read_text(encoding="utf-8")
    assert example_config() == documented, (
        "cp config/daily-otel-bridge.example.yaml daily_otel_bridge/config/example.yaml"
    )


def test_init_writes_the_example_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "etc" / "config.yaml"
    assert main(["init", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == example_config()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the API key goes in there
    assert "check-config --config" in capsys.readouterr().err
    target.write_text("mine")
    assert main(["init", str(target)]) == 1
    assert target.read_text() == "mine"
    assert "--force" in capsys.readouterr().err
    assert main(["init", str(target), "--force"]) == 0
    assert target.read_text(encoding="utf-8") == example_config()


def test_init_defaults_to_the_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "from-env.yaml"))
    assert main(["init"]) == 0
    assert (tmp_path / "from-env.yaml").read_text(encoding="utf-8") == example_config()
    assert main(["--config", str(tmp_path / "given.yaml"), "init"]) == 0
    assert (tmp_path / "given.yaml").exists()


def test_init_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "-"]) == 0
    assert capsys.readouterr().out == example_config()


def test_the_example_is_a_valid_config() -> None:
    settings = parse_settings(yaml.safe_load(example_config()), environ={"DAILY_API_KEY": "k" * 20})
    assert [d.name for d in settings.domains] == ["acme"]


# --- the start-up line -----------------------------------------------------------------------


def test_startup_fields(tmp_path: Path) -> None:
    from daily_otel_bridge import __version__
    from daily_otel_bridge.config.settings import load_settings

    settings = load_settings(write_config(tmp_path))
    fields = startup_fields(settings, health_address="127.0.0.1:40123")
    assert fields["version"] == __version__
    assert fields["config"] == str((tmp_path / "bridge.yaml").absolute())
    assert fields["domains"] == ["acme"]
    assert fields["health"] == "127.0.0.1:40123"
    assert startup_fields(settings, health_address=None)["health"] == "disabled"


# --- healthcheck -----------------------------------------------------------------------------


def test_healthcheck_asks_loopback_for_a_wildcard_listen_address(tmp_path: Path) -> None:
    from daily_otel_bridge.cli.probe import healthz_url
    from daily_otel_bridge.config.settings import load_settings

    config = write_config(tmp_path)
    for listen, url in (
        ("0.0.0.0:9000", "http://127.0.0.1:9000/healthz"),
        ("[::]:9001", "http://[::1]:9001/healthz"),
        ("10.1.2.3:9002", "http://10.1.2.3:9002/healthz"),
    ):
        doc = yaml.safe_load(config.read_text())
        doc["health"] = {"listen": listen}
        config.write_text(yaml.safe_dump(doc))
        assert healthz_url(load_settings(config)) == url


def test_healthcheck_never_exits_2_which_docker_reserves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["healthcheck", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err
