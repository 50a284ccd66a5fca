"""Settings of several replicas (state_url, lease_duration, replica_id) and the settings
mode of the `state` commands, which needs no domain secret."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from daily_otel_bridge.config.dsn import describe_target, redact_url
from daily_otel_bridge.config.settings import (
    ConfigError,
    Settings,
    load_settings,
    parse_settings,
    render_effective,
)

PASSWORD = "s3cret-Pa55word-xyz"


def doc(**top: Any) -> dict[str, Any]:
    return {"domains": [{"name": "acme", "api_key": "k-123456789"}], **top}


def parse(data: Any, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    return parse_settings(data, environ=env or {}, **kw)


def error(data: Any, env: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, env, **kw)
    return str(info.value)


def test_defaults_are_sqlite_with_a_30s_lease() -> None:
    s = parse(doc())
    assert s.backend == "sqlite"
    assert s.state_url is None
    assert s.lease_duration == 30.0
    assert s.replica_id is None
    assert s.effective_replica_id().endswith(f"-{os.getpid()}")
    assert s.effective_replica_id().startswith(socket.gethostname()[:10].replace(" ", "-"))


def test_state_url_with_password_from_the_environment() -> None:
    s = parse(
        doc(
            state_url="postgresql://bridge:${PGPW}@db.internal:5432/bridge",
            lease_duration="10s",
            replica_id="pod-a",
        ),
        {"PGPW": PASSWORD},
    )
    assert s.backend == "postgresql"
    assert s.state_url is not None
    assert (
        s.state_url.get_secret_value() == f"postgresql://bridge:{PASSWORD}@db.internal:5432/bridge"
    )
    assert PASSWORD not in repr(s)
    assert (s.lease_duration, s.effective_replica_id()) == (10.0, "pod-a")


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ({"state_url": "mysql://x@h/db"}, "state_url: must be a postgresql:// URL"),
        ({"state_url": "postgresql://h:99999/db"}, "state_url: is not a valid URL"),
        ({"state_url": "postgresql://h/db x"}, "state_url: must not contain whitespace"),
        (
            {"state_url": "postgresql://h/db", "state_path": "/tmp/x.db"},
            "set state_path or state_url, not both",
        ),
        ({"lease_duration": "500ms"}, "lease_duration: must be at least 1s"),
        ({"lease_duration": "soon"}, "lease_duration: invalid duration"),
        ({"replica_id": "a b"}, "replica_id: must be 1 to 128 letters"),
        ({"replica_id": "x" * 129}, "replica_id: must be 1 to 128 letters"),
    ],
)
def test_bad_values_name_their_key(top: dict[str, Any], expected: str) -> None:
    assert expected in error(doc(**top))


def test_empty_state_url_means_unset() -> None:
    assert parse(doc(state_url="${NOPE:-}")).backend == "sqlite"


def test_errors_next_to_the_password_never_show_it() -> None:
    text = error(
        doc(state_url=f"postgresql://bridge:{PASSWORD}@db:5432/bridge", lease_duration="x"),
    )
    assert "lease_duration" in text
    assert PASSWORD not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://bridge:{PASSWORD}@db:5432/b", "postgresql://bridge:***@db:5432/b"),
        ("postgresql://bridge@db:5432/b", "postgresql://bridge@db:5432/b"),
        (f"postgresql://db/b?password={PASSWORD}&sslmode=require", "postgresql://db/b?***"),
        ("postgresql://db:bad/b", "postgresql://***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert PASSWORD not in describe_target(url)


def test_check_config_masks_the_password_only() -> None:
    s = parse(
        doc(state_url="postgresql://bridge:${PGPW}@db.internal:5432/bridge"), {"PGPW": PASSWORD}
    )
    text = render_effective(s)
    assert PASSWORD not in text
    rendered = yaml.safe_load(text)
    assert rendered["state_url"] == "postgresql://bridge:***@db.internal:5432/bridge"
    assert "state_path" not in rendered  # not the store in use
    assert rendered["lease_duration"] == "30s"
    sqlite = yaml.safe_load(render_effective(parse(doc())))
    assert "state_url" not in sqlite
    assert "state_path" in sqlite


def test_state_commands_need_no_domain_secret(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_path": "state/state.db",
                "export": {"headers": {"authorization": "${OTLP_TOKEN}"}},
                "domains": [
                    {"name": "acme", "api_key": "${DAILY_API_KEY}"},
                    {"name": "beta", "api_key_file": "missing.key"},
                    {"name": "gamma"},
                ],
            }
        )
    )
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "broken"}
    with pytest.raises(ConfigError, match="DAILY_API_KEY"):
        load_settings(config, env)
    s = load_settings(config, env, secrets=False)
    assert [d.name for d in s.domains] == ["acme", "beta", "gamma"]
    assert s.state_path == tmp_path / "state" / "state.db"


def test_state_commands_still_report_state_problems(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"state_url": "${PG_URL}", "domains": [{"name": "acme"}]}))
    with pytest.raises(ConfigError, match="state_url: environment variable PG_URL not set"):
        load_settings(config, {}, secrets=False)


def test_state_secrets_for_the_log_scrubber() -> None:
    from daily_otel_bridge.state.factory import state_secrets

    assert state_secrets(parse(doc())) == []
    assert state_secrets(parse(doc(state_url="postgresql://u@h/db"))) == []
    s = parse(doc(state_url="postgresql://u:p%40ss-w0rd-long@h/db"))
    assert state_secrets(s) == ["p%40ss-w0rd-long", "p@ss-w0rd-long"]
