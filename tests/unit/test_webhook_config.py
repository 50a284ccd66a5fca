"""The `webhooks:` section and each domain's `webhook_secret` / `webhook_secret_file`: defaults,
checks (tables of input -> error text), secret files read like `api_key_file`, masking in
`check-config`, and secrets kept out of every error text."""

from __future__ import annotations

import base64
import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from daily_otel_bridge.config.settings import (
    ConfigError,
    Settings,
    load_settings,
    parse_settings,
    render_effective,
)

# A base64 secret, as Daily gives one (32 random bytes); and a password.
WEBHOOK_SECRET = base64.b64encode(b"webhook-secret-bytes-0123456789!").decode()
PASSWORD = "basic-PASSWORD-9d1e77"


def doc(
    webhooks: Any = None, *, secret: str | None = WEBHOOK_SECRET, **domain: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "acme", "api_key": "k-123", **domain}
    if secret is not None:
        entry["webhook_secret"] = secret
    out: dict[str, Any] = {"domains": [entry]}
    if webhooks is not None:
        out["webhooks"] = webhooks
    return out


def parse(document: Any, env: dict[str, str] | None = None, **kwargs: Any) -> Settings:
    return parse_settings(copy.deepcopy(document), environ=env or {}, **kwargs)


def error_of(document: Any, env: dict[str, str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(document, env, **kwargs)
    return str(info.value)


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


# --- defaults ----------------------------------------------------------------------------------


def test_off_by_default() -> None:
    settings = parse(doc())
    assert settings.webhooks is None
    assert not settings.webhooks_enabled


@pytest.mark.parametrize(
    ("section", "enabled"),
    [
        ({}, True),  # the section's presence turns it on
        ({"enabled": True}, True),
        ({"enabled": False}, False),
    ],
)
def test_presence_of_the_section_enables(section: dict[str, Any], enabled: bool) -> None:
    assert parse(doc(section)).webhooks_enabled is enabled


def test_a_section_with_every_line_commented_out_is_off() -> None:
    # `webhooks:` followed only by comments is null in YAML: like `health:`, no section.
    settings = parse(yaml.safe_load("domains: [{name: acme, api_key: k-123}]\nwebhooks:\n"))
    assert settings.webhooks is None


def test_defaults() -> None:
    hooks = parse(doc({})).webhooks
    assert hooks is not None
    assert (hooks.host, hooks.port) == ("127.0.0.1", 8090)
    assert hooks.path_prefix == "/webhooks"
    assert hooks.timestamp_tolerance == 300.0
    assert hooks.dedupe_window == 3600.0
    assert hooks.max_body_bytes == 1024 * 1024
    assert hooks.tls_cert_file is None
    assert hooks.tls_key_file is None
    assert hooks.basic_auth_user is None
    assert hooks.basic_auth_password is None
    assert hooks.discovery_stretch == 2.0


def test_durations_use_the_config_spelling() -> None:
    hooks = parse(doc({"timestamp_tolerance": "90s", "dedupe_window": "2h"})).webhooks
    assert hooks is not None
    assert (hooks.timestamp_tolerance, hooks.dedupe_window) == (90.0, 7200.0)


# --- checks: one table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"listen": "8090"}, "webhooks.listen: must be host:port"),
        ({"listen": "0.0.0.0:70000"}, "webhooks.listen: must be host:port"),
        ({"path_prefix": "webhooks"}, "webhooks.path_prefix: must be a URL path like /webhooks"),
        ({"path_prefix": "/"}, "webhooks.path_prefix: must be a URL path"),
        ({"path_prefix": "/a b"}, "webhooks.path_prefix: must be a URL path"),
        ({"timestamp_tolerance": "0s"}, "webhooks.timestamp_tolerance: must be greater than 0"),
        ({"timestamp_tolerance": "soon"}, "webhooks.timestamp_tolerance: invalid duration"),
        ({"dedupe_window": -1}, "webhooks.dedupe_window: duration must not be negative"),
        ({"max_body_bytes": 100}, "webhooks.max_body_bytes: must be from 1024 to 16777216"),
        ({"max_body_bytes": 2**30}, "webhooks.max_body_bytes: must be from 1024 to 16777216"),
        ({"discovery_stretch": 0.5}, "webhooks.discovery_stretch: must be from 1 (never"),
        ({"discovery_stretch": 11}, "webhooks.discovery_stretch: must be from 1 (never"),
        ({"tls_cert_file": "/c.pem"}, "tls_cert_file and tls_key_file must be set together"),
        ({"tls_key_file": "/k.pem"}, "tls_cert_file and tls_key_file must be set together"),
        ({"basic_auth_user": "daily"}, "basic_auth_user and basic_auth_password"),
        ({"basic_auth_password": PASSWORD}, "basic_auth_user and basic_auth_password"),
        (
            {"basic_auth_user": "a:b", "basic_auth_password": PASSWORD},
            "webhooks.basic_auth_user: must be non-empty, without ':'",
        ),
        (
            {"basic_auth_user": "daily", "basic_auth_password": "pass word"},
            "webhooks.basic_auth_password: must not contain whitespace",
        ),
        ({"unknown": 1}, "webhooks.unknown: unknown key"),
        ({"listen": "127.0.0.1:9464"}, "webhooks.listen must differ from health.listen"),
    ],
)
def test_section_checks(section: dict[str, Any], message: str) -> None:
    text = error_of(doc(section))
    assert message in text
    assert PASSWORD not in text


def test_not_a_mapping() -> None:
    assert "webhooks" in error_of(doc(["listen"]))


def test_enabled_needs_a_domain_with_a_secret() -> None:
    text = error_of(doc({}, secret=None))
    assert "no domain has a webhook_secret or webhook_secret_file" in text
    # Off, nothing is required.
    assert parse(doc({"enabled": False}, secret=None)).webhooks_enabled is False


def test_same_port_as_health_is_fine_when_health_is_off() -> None:
    document = doc({"listen": "127.0.0.1:9464"})
    document["health"] = {"enabled": False}
    assert parse(document).webhooks_enabled


# --- the domain's secret -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("not base64!", "domains[0].webhook_secret: must not contain whitespace"),
        ("@@@@", "domains[0].webhook_secret: must be base64"),
        ("abc", "domains[0].webhook_secret: must be base64"),  # bad padding
        ("c2VjcmV0\n\u0000", "domains[0].webhook_secret: must not contain whitespace"),
    ],
)
def test_secret_checks(secret: str, message: str) -> None:
    text = error_of(doc({}, secret=secret))
    assert message in text
    assert secret.strip() not in text


def test_inline_secret_and_env_expansion() -> None:
    document = doc({}, secret="${WH_SECRET}")
    settings = parse(document, {"WH_SECRET": WEBHOOK_SECRET})
    secret = settings.domains[0].webhook_secret
    assert secret is not None
    assert secret.get_secret_value() == WEBHOOK_SECRET
    # An empty value means "not set", like every optional key.
    assert parse(doc(secret="${WH_SECRET:-}")).domains[0].webhook_secret is None


def test_secret_from_a_file(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "acme.secret", WEBHOOK_SECRET + "\n")
    settings = parse(doc({}, secret=None, webhook_secret_file="acme.secret"), base_dir=tmp_path)
    domain = settings.domains[0]
    assert domain.webhook_secret is not None
    assert domain.webhook_secret.get_secret_value() == WEBHOOK_SECRET
    assert domain.webhook_secret_file == path


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist (`daily-otel-bridge webhooks register --domain acme` writes"),
        ("open", "is readable by other users; chmod 600 it"),
        ("empty", "is empty"),
        ("directory", "is not a regular file"),
    ],
)
def test_secret_file_problems(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "acme.secret"
    if setup == "open":
        write_secret(path, WEBHOOK_SECRET, 0o644)
    elif setup == "empty":
        write_secret(path, "")
    elif setup == "directory":
        path.mkdir()
    text = error_of(doc({}, secret=None, webhook_secret_file=str(path)))
    assert text.startswith("domains[0].webhook_secret_file: ")
    assert message in text
    assert WEBHOOK_SECRET not in text


def test_secret_and_file_are_exclusive(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "s", WEBHOOK_SECRET)
    text = error_of(doc({}, webhook_secret_file=str(path)))
    assert "domains[0].webhook_secret: set webhook_secret or webhook_secret_file, not both" in text
    assert WEBHOOK_SECRET not in text


def test_bad_secret_in_a_file_is_reported_without_it(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "s", "%%not-base64%%")
    text = error_of(doc({}, secret=None, webhook_secret_file=str(path)))
    assert "webhook_secret: must be base64" in text
    assert "%%not-base64%%" not in text


def test_register_mode_resolves_the_file_without_reading_it(tmp_path: Path) -> None:
    # `webhooks register` writes the file: it must load a config whose file is not there yet.
    settings = parse(
        doc({}, secret=None, webhook_secret_file="new.secret"),
        base_dir=tmp_path,
        webhook_secrets=False,
    )
    domain = settings.domains[0]
    assert domain.webhook_secret is None
    assert domain.webhook_secret_file == tmp_path / "new.secret"


def test_state_commands_ignore_webhooks(tmp_path: Path) -> None:
    # The state commands load without secrets: a missing secret file must not stop them.
    document = doc({"basic_auth_user": "u", "basic_auth_password_file": "nope"}, secret=None)
    document["domains"][0]["webhook_secret_file"] = str(tmp_path / "missing")
    settings = parse(document, secrets=False)
    assert settings.webhooks is None
    assert settings.domains[0].webhook_secret is None


def test_basic_auth_password_file(tmp_path: Path) -> None:
    write_secret(tmp_path / "pw", PASSWORD + "\n")
    hooks = parse(
        doc({"basic_auth_user": "daily", "basic_auth_password_file": "pw"}), base_dir=tmp_path
    ).webhooks
    assert hooks is not None
    assert hooks.basic_auth_password is not None
    assert hooks.basic_auth_password.get_secret_value() == PASSWORD
    assert hooks.basic_auth_password_file == tmp_path / "pw"


def test_tls_paths_resolve_against_the_config(tmp_path: Path) -> None:
    hooks = parse(
        doc({"tls_cert_file": "tls/c.pem", "tls_key_file": "/abs/k.pem"}), base_dir=tmp_path
    ).webhooks
    assert hooks is not None
    assert hooks.tls_cert_file == tmp_path / "tls" / "c.pem"
    assert hooks.tls_key_file == Path("/abs/k.pem")


# --- check-config ------------------------------------------------------------------------------


def test_check_config_masks_and_mirrors_the_input(tmp_path: Path) -> None:
    pw = write_secret(tmp_path / "pw", PASSWORD)
    document = doc(
        {"basic_auth_user": "daily", "basic_auth_password_file": str(pw), "dedupe_window": "2h"}
    )
    document["domains"].append(
        {"name": "beta", "api_key": "k-456", "webhook_secret_file": str(tmp_path / "b.secret")}
    )
    write_secret(tmp_path / "b.secret", WEBHOOK_SECRET)
    document["domains"].append({"name": "gamma", "api_key": "k-789"})
    text = render_effective(parse(document))
    assert WEBHOOK_SECRET not in text
    assert PASSWORD not in text
    rendered = yaml.safe_load(text)
    acme, beta, gamma = rendered["domains"]
    assert acme["webhook_secret"] == "***"
    assert "webhook_secret_file" not in acme
    assert beta["webhook_secret_file"] == str(tmp_path / "b.secret")
    assert "webhook_secret" not in beta
    assert "webhook_secret" not in gamma
    assert "webhook_secret_file" not in gamma
    hooks = rendered["webhooks"]
    assert hooks["basic_auth_password_file"] == str(pw)
    assert "basic_auth_password" not in hooks
    assert hooks["dedupe_window"] == "2h"
    assert hooks["timestamp_tolerance"] == "5m"


def test_load_settings_from_a_file(tmp_path: Path) -> None:
    write_secret(tmp_path / "acme.secret", WEBHOOK_SECRET)
    config = tmp_path / "config.yaml"
    config.write_text(
        "domains:\n"
        "  - name: acme\n"
        "    api_key: k-123\n"
        "    webhook_secret_file: acme.secret\n"
        "webhooks:\n"
        "  listen: 127.0.0.1:0\n"
    )
    settings = load_settings(config, {})
    assert settings.webhooks_enabled
    secret = settings.domains[0].webhook_secret
    assert secret is not None
    assert secret.get_secret_value() == WEBHOOK_SECRET
    (tmp_path / "acme.secret").unlink()
    register = load_settings(config, {}, webhook_secrets=False)
    assert register.domains[0].webhook_secret_file == tmp_path / "acme.secret"
