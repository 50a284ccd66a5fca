"""Config model and loading: durations, ${VAR} expansion, error paths, env fallbacks, secrets."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from daily_otel_bridge.config.settings import (
    ConfigError,
    DomainSettings,
    ExportSettings,
    HealthSettings,
    Settings,
    format_duration,
    load_settings,
    parse_duration,
    parse_settings,
    render_effective,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "daily-otel-bridge.example.yaml"

API_SECRET = "dk_live_SECRET_7f3a9c1e5b"
HEADER_SECRET = "dd_HEADER_SECRET_42b8e0"
ENV_HEADER_SECRET = "env_HEADER_SECRET_c0ffee"


def base_doc() -> dict[str, Any]:
    return {"domains": [{"name": "acme", "api_key": "k-123"}]}


def parse(doc: Any, env: dict[str, str] | None = None, **kwargs: Any) -> Settings:
    return parse_settings(doc, environ=env or {}, **kwargs)


def config_error(doc: Any, env: dict[str, str] | None = None, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(doc, env, **kwargs)
    return info.value


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with `value` at `dotted` ("domains.0.export.timeout")."""
    doc = copy.deepcopy(doc)
    node: Any = doc
    parts = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parts[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return doc


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5m", 90.0),
        (" 15s ", 15.0),
        ("30", 30.0),
        ("0.25", 0.25),
        ("0", 0.0),
        (15, 15.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["abc", "-5s", "-1", -1, -0.5, "15 minutes", "1d", "", "15S", "1e3", "nan", float("inf"), True],
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.5, "500ms"), (15.0, "15s"), (90.0, "90s"), (120.0, "2m"), (3600.0, "1h")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_duration_fields_accept_duration_syntax() -> None:
    doc = base_doc()
    doc["health"] = {"staleness": "90s"}
    doc["self_telemetry"] = {"interval": "2m"}
    doc["export"] = {"timeout": "1500ms", "max_retry_time": "5m"}
    doc["domains"][0].update(
        poll_interval="500ms",
        initial_lookback="2h",
        lookback=30,
        settle_lag="0",
        session_grace="15m",
        max_quiet_interval="3m",
        request_timeout="45s",
    )
    s = parse(doc)
    d = s.domains[0]
    assert (s.health.staleness, s.self_telemetry.interval) == (90.0, 120.0)
    assert (s.export.timeout, s.export.max_retry_time) == (1.5, 300.0)
    assert (d.poll_interval, d.initial_lookback, d.lookback, d.settle_lag) == (0.5, 7200, 30, 0)
    assert (d.session_grace, d.max_quiet_interval, d.request_timeout) == (900, 180, 45)


# --- ${VAR} expansion -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A}", {"A": ""}, ""),
        ("${B:-fallback}", {}, "fallback"),
        ("${B:-fallback}", {"B": ""}, "fallback"),
        ("${B:-fallback}", {"B": "set"}, "set"),
        ("${B:-}", {}, ""),
        ("$${A}", {"A": "x"}, "${A}"),
        ("cost: $5 and $$", {}, "cost: $5 and $$"),
        # An environment value is never parsed as YAML.
        ("${A}", {"A": "x\nfoo: [bar]"}, "x\nfoo: [bar]"),
        ("${A}", {"A": "${B}"}, "${B}"),
    ],
)
def test_env_expansion(template: str, env: dict[str, str], expected: str) -> None:
    doc = set_path(base_doc(), "domains.0.resource_attributes", {"v": template})
    assert parse(doc, env).domains[0].resource_attributes["v"] == expected


def test_expansion_converts_to_the_field_type() -> None:
    doc = set_path(base_doc(), "domains.0.requests_per_second", "${RPS:-7.5}")
    doc = set_path(doc, "domains.0.include_metrics", "${METRICS}")
    d = parse(doc, {"METRICS": "true"}).domains[0]
    assert (d.requests_per_second, d.include_metrics) == (7.5, True)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${DAILY_KEY_X}", "domains[0].api_key: environment variable DAILY_KEY_X not set"),
        ("${A}/${B}", "domains[0].api_key: environment variables A, B not set"),
        ("${1A}", "domains[0].api_key: malformed ${...}"),
        ("${A-x}", "domains[0].api_key: malformed ${...}"),
        ("${A", "domains[0].api_key: malformed ${...}"),
    ],
)
def test_expansion_errors_name_path_and_variable(template: str, expected: str) -> None:
    err = config_error(set_path(base_doc(), "domains.0.api_key", template))
    assert str(err) == expected or str(err).startswith(expected)
    assert len(err.problems) == 1


# --- error paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("domains.0.poll_interval", "abc", "domains[0].poll_interval: invalid duration 'abc' (use"),
        ("domains.0.poll_interval", 0, "domains[0].poll_interval: must be greater than 0"),
        ("domains.0.lookback", "-1s", "domains[0].lookback: duration must not be negative"),
        ("domains.0.settle_lag", -1, "domains[0].settle_lag: duration must not be negative"),
        ("domains.0.max_quiet_interval", "0s", "domains[0].max_quiet_interval: must be greater"),
        ("domains.0.request_timeout", "x", "domains[0].request_timeout: invalid duration"),
        ("domains.0.requests_per_second", 21, "domains[0].requests_per_second: must be greater"),
        ("domains.0.requests_per_second", 0, "domains[0].requests_per_second: must be greater"),
        ("domains.0.page_size", 1, "domains[0].page_size: must be from 2 to 1000"),
        ("domains.0.page_size", 1001, "domains[0].page_size: must be from 2 to 1000"),
        ("domains.0.page_size", "many", "domains[0].page_size: must be an integer"),
        ("domains.0.name", "bad name", "domains[0].name: must be a Daily domain name"),
        ("domains.0.name", "", "domains[0].name: must be a Daily domain name"),
        ("domains.0.api_url", "ftp://api.daily.co", "domains[0].api_url: must be a URL"),
        ("domains.0.api_url", "api.daily.co/v1", "domains[0].api_url: must be a URL"),
        ("domains.0.api_url", "https://u:p@api.daily.co", "domains[0].api_url: must not contain"),
        ("domains.0.enabled", "perhaps", "domains[0].enabled: must be true or false"),
        ("domains.0.log_level", "TRACE", "domains[0].log_level: must be one of 'ERROR'"),
        ("domains.0.severity_map", {0: "LOUD"}, "domains[0].severity_map[0]: must be one of"),
        ("domains.0.severity_map", {"x": "INFO"}, "domains[0].severity_map.x: key must be an int"),
        ("domains.0.rooms", "room-1", "domains[0].rooms: must be a list"),
        ("domains.0.rooms", [""], "domains[0].rooms[0]: must not be empty"),
        ("domains.0.resource_attributes", {"k": None}, "domains[0].resource_attributes.k: must be"),
        ("domains.0.resource_attributes", [1], "domains[0].resource_attributes: must be a mapping"),
        ("domains.0.export", "otlp", "domains[0].export: must be a mapping"),
        ("domains.0.export.timeout", "soon", "domains[0].export.timeout: invalid duration"),
        (
            "domains.0.export.protocol",
            "http/json",
            "domains[0].export.protocol: 'http/json' is not supported, use http/protobuf",
        ),
        ("domains.0.export.protocol", "udp", "domains[0].export.protocol: must be one of"),
        (
            "domains.0.export.endpoint",
            "collector:4317",
            "domains[0].export.endpoint: must be a URL",
        ),
        (
            "domains.0.export.logs_endpoint",
            "nope",
            "domains[0].export.logs_endpoint: must be a URL",
        ),
        ("export", "otlp", "export: must be a mapping"),
        ("export.compression", "zstd", "export.compression: must be one of 'gzip' or 'none'"),
        ("export.batch_size", 0, "export.batch_size: must be at least 1"),
        ("export.timeout", "0s", "export.timeout: must be greater than 0"),
        ("export.max_retry_time", "-1s", "export.max_retry_time: duration must not be negative"),
        ("export.insecure", "maybe", "export.insecure: must be true or false"),
        ("export.headers", {"bad name": "v"}, "export.headers.bad name: key header names may"),
        ("export.headers", {"x-a": "a\r\nb"}, "export.headers.x-a: header values must be print"),
        ("export.headers", ["a"], "export.headers: must be a mapping"),
        ("export.client_certificate_file", "/c.pem", "export: client_certificate_file and"),
        ("health", "on", "health: must be a mapping"),
        ("health.listen", "localhost", "health.listen: must be host:port"),
        ("health.listen", "localhost:70000", "health.listen: must be host:port"),
        ("health.listen", "::1:9464", "health.listen: must be host:port"),
        ("health.staleness", "0s", "health.staleness: must be greater than 0"),
        ("self_telemetry.interval", "often", "self_telemetry.interval: invalid duration"),
        ("self_telemetry.otlp", "sure", "self_telemetry.otlp: must be true or false"),
        ("state_path", "", "state_path: must not be empty"),
        ("domains", [], "domains: at least one domain is required"),
        ("domains", None, "domains: at least one domain is required"),
        ("domains", {"name": "acme"}, "domains: must be a list"),
        ("domains.0", "acme", "domains[0]: must be a mapping"),
    ],
)
def test_every_error_names_its_path(where: str, value: Any, expected: str) -> None:
    err = config_error(set_path(base_doc(), where, value))
    assert any(line.startswith(expected) for line in str(err).splitlines()), str(err)


def test_missing_domains_and_non_mapping_document() -> None:
    assert str(config_error({})) == "domains: missing (required)"
    assert str(config_error(None)).startswith("<config>: empty configuration")
    assert (
        str(config_error(["x"], source="bridge.yaml"))
        == "bridge.yaml: must be a mapping of settings"
    )


def test_duplicate_domain_names() -> None:
    doc = base_doc()
    doc["domains"].append({"name": "ACME", "api_key": "k-456"})
    assert str(config_error(doc)) == "domains[1].name: duplicate domain 'ACME' (also domains[0])"


def test_several_problems_one_per_line() -> None:
    doc = set_path(base_doc(), "domains.0.poll_interval", "abc")
    doc = set_path(doc, "export.compression", "zstd")
    doc = set_path(doc, "health.listen", "nowhere")
    err = config_error(doc)
    assert {line.split(":")[0] for line in str(err).splitlines()} == {
        "domains[0].poll_interval",
        "export.compression",
        "health.listen",
    }
    assert len(err.problems) == 3


def test_broken_global_export_is_not_repeated_for_each_domain() -> None:
    doc = set_path(base_doc(), "export.timeout", "soon")
    doc["domains"].append({"name": "other", "api_key": "k", "export": {"batch_size": 10}})
    assert str(config_error(doc)).splitlines() == [
        "export.timeout: invalid duration 'soon' (use 500ms, 15s, 2m, 1h or seconds)"
    ]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("domain", "domain: unknown key (did you mean domains?)"),
        ("pol_interval", "pol_interval: unknown key"),
        (
            "domains.0.pol_interval",
            "domains[0].pol_interval: unknown key (did you mean poll_interval?)",
        ),
        (
            "domains.0.export.endpont",
            "domains[0].export.endpont: unknown key (did you mean endpoint?)",
        ),
        ("export.protocl", "export.protocl: unknown key (did you mean protocol?)"),
        ("health.port", "health.port: unknown key"),
        ("self_telemetry.otlp_endpoint", "self_telemetry.otlp_endpoint: unknown key"),
        ("config_path", "config_path: unknown key"),
        ("domains.0.zzz", "domains[0].zzz: unknown key"),
    ],
)
def test_unknown_keys(where: str, expected: str) -> None:
    err = config_error(set_path(base_doc(), where, 1))
    assert str(err).splitlines()[0].startswith(expected), str(err)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("domains:\n  - name: a\n    api_key: k\n    api_key: k2\n")
    with pytest.raises(ConfigError, match=r"line 4, column 5: duplicate key 'api_key'"):
        load_settings(path, {})


# --- API key ---------------------------------------------------------------------------------


def test_missing_api_key() -> None:
    err = config_error({"domains": [{"name": "acme"}]})
    assert str(err) == "domains[0].api_key: missing; set api_key or api_key_file"


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [
        ("", "domains[0].api_key: must not be empty"),
        ("   ", "domains[0].api_key: must not be empty"),
        ("two words", "domains[0].api_key: must not contain whitespace or control characters"),
        (12345, "domains[0].api_key: must be a string"),
    ],
)
def test_bad_api_key(api_key: Any, expected: str) -> None:
    assert str(config_error(set_path(base_doc(), "domains.0.api_key", api_key))) == expected


def test_api_key_and_api_key_file_together(tmp_path: Path) -> None:
    doc = set_path(base_doc(), "domains.0.api_key_file", str(tmp_path / "k"))
    assert str(config_error(doc)) == "domains[0].api_key: set api_key or api_key_file, not both"


def write_key(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content)
    os.chmod(path, mode)
    return path


def test_api_key_file_happy_path(tmp_path: Path) -> None:
    write_key(tmp_path / "daily-api-key", f"{API_SECRET}\n")
    (tmp_path / "bridge.yaml").write_text(
        "domains:\n  - name: acme\n    api_key_file: daily-api-key\n"  # relative to the file
    )
    s = load_settings(tmp_path / "bridge.yaml", {})
    d = s.domains[0]
    assert d.api_key.get_secret_value() == API_SECRET
    assert d.api_key_file == tmp_path / "daily-api-key"
    assert s.config_path == tmp_path / "bridge.yaml"
    rendered = render_effective(s)
    assert API_SECRET not in rendered
    assert f"api_key_file: {tmp_path / 'daily-api-key'}" in rendered


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_api_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key = write_key(tmp_path / "key", API_SECRET, mode)
    doc = {"domains": [{"name": "acme", "api_key_file": str(key)}]}
    err = config_error(doc)
    assert str(err) == f"domains[0].api_key_file: {key} is readable by other users; chmod 600 it"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("directory", "is not a regular file"),
    ],
)
def test_api_key_file_problems(tmp_path: Path, setup: str, expected: str) -> None:
    key = tmp_path / "key"
    if setup == "empty":
        write_key(key, "\n")
    elif setup == "directory":
        key.mkdir()
    doc = {"domains": [{"name": "acme", "api_key_file": str(key)}]}
    assert str(config_error(doc)) == f"domains[0].api_key_file: {key} {expected}"


# --- export: per-domain override, env fallbacks ---------------------------------------------


def test_domain_export_is_laid_over_the_global_section() -> None:
    doc = {
        "export": {
            "endpoint": "https://global.example:4317",
            "headers": {"X-A": "a", "X-B": "b", "X-Drop": "d"},
            "timeout": "5s",
            "batch_size": 100,
        },
        "domains": [
            {"name": "plain", "api_key": "k"},
            {
                "name": "special",
                "api_key": "k",
                "export": {
                    "protocol": "http/protobuf",
                    "timeout": "20s",
                    "headers": {"x-b": "B2", "X-C": "c", "X-Drop": None},
                },
            },
        ],
    }
    s = parse(doc)
    plain, special = s.domains
    assert plain.export == s.export
    assert dict(s.export.header_items()) == {"x-a": "a", "x-b": "b", "x-drop": "d"}
    assert special.export.protocol == "http/protobuf"
    assert special.export.endpoint == "https://global.example:4317"  # inherited, explicit
    assert special.export.timeout == 20.0
    assert special.export.batch_size == 100
    assert dict(special.export.header_items()) == {"x-a": "a", "x-b": "B2", "x-c": "c"}


def test_domain_protocol_override_picks_its_own_default_endpoint() -> None:
    doc = set_path(base_doc(), "domains.0.export", {"protocol": "http/protobuf"})
    s = parse(doc)
    assert s.export.endpoint == "http://127.0.0.1:4317"
    assert s.domains[0].export.endpoint == "http://127.0.0.1:4318"


def test_export_defaults() -> None:
    e = parse(base_doc()).export
    assert (e.protocol, e.endpoint, e.compression, e.timeout) == (
        "grpc",
        "http://127.0.0.1:4317",
        "gzip",
        10.0,
    )
    assert (e.headers, e.insecure, e.logs_endpoint, e.batch_size, e.max_retry_time) == (
        {},
        None,
        None,
        2000,
        60.0,
    )


E = "OTEL_EXPORTER_OTLP_"


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({E + "PROTOCOL": "http/protobuf"}, "protocol", "http/protobuf"),
        (
            {E + "PROTOCOL": "grpc", E + "LOGS_PROTOCOL": "http/protobuf"},
            "protocol",
            "http/protobuf",
        ),
        ({E + "PROTOCOL": "http/protobuf"}, "endpoint", "http://127.0.0.1:4318"),
        ({E + "ENDPOINT": "https://otel.example:4317/"}, "endpoint", "https://otel.example:4317"),
        ({E + "ENDPOINT": ""}, "endpoint", "http://127.0.0.1:4317"),  # empty = unset
        (
            {E + "LOGS_ENDPOINT": "https://x.example/v1/logs"},
            "logs_endpoint",
            "https://x.example/v1/logs",
        ),
        (
            {E + "METRICS_ENDPOINT": "https://x.example/m"},
            "metrics_endpoint",
            "https://x.example/m",
        ),
        ({E + "COMPRESSION": "none"}, "compression", "none"),
        ({E + "COMPRESSION": "none", E + "LOGS_COMPRESSION": "gzip"}, "compression", "gzip"),
        ({E + "TIMEOUT": "2500"}, "timeout", 2.5),
        ({E + "TIMEOUT": "2500", E + "LOGS_TIMEOUT": "500"}, "timeout", 0.5),
        ({E + "INSECURE": "true"}, "insecure", True),
        ({E + "INSECURE": "FALSE"}, "insecure", False),
        ({E + "CERTIFICATE": "/etc/ca.pem"}, "certificate_file", Path("/etc/ca.pem")),
        (
            {E + "LOGS_CERTIFICATE": "/l.pem", E + "CERTIFICATE": "/g.pem"},
            "certificate_file",
            Path("/l.pem"),
        ),
        (
            {E + "CLIENT_CERTIFICATE": "/c.pem", E + "CLIENT_KEY": "/k.pem"},
            "client_key_file",
            Path("/k.pem"),
        ),
        (
            {E + "LOGS_CLIENT_CERTIFICATE": "/c.pem", E + "LOGS_CLIENT_KEY": "/k.pem"},
            "client_certificate_file",
            Path("/c.pem"),
        ),
    ],
)
def test_otel_env_fallbacks(env: dict[str, str], field: str, expected: Any) -> None:
    s = parse(base_doc(), env)
    assert getattr(s.export, field) == expected
    assert getattr(s.domains[0].export, field) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({E + "HEADERS": "a=1,b=x%20y%3Dz"}, {"a": "1", "b": "x y=z"}),
        ({E + "HEADERS": " A = 1 , ,b=2"}, {"a": "1", "b": "2"}),
        ({E + "HEADERS": "a=1,b=2", E + "LOGS_HEADERS": "b=3,c=4"}, {"a": "1", "b": "3", "c": "4"}),
    ],
)
def test_otel_env_headers(env: dict[str, str], expected: dict[str, str]) -> None:
    assert dict(parse(base_doc(), env).export.header_items()) == expected


def test_yaml_beats_env() -> None:
    env = {
        E + "PROTOCOL": "http/protobuf",
        E + "ENDPOINT": "https://env.example",
        E + "TIMEOUT": "1000",
        E + "COMPRESSION": "none",
        E + "HEADERS": "a=env,b=env",
    }
    doc = set_path(
        base_doc(),
        "export",
        {
            "protocol": "grpc",
            "endpoint": "http://yaml:4317",
            "timeout": "3s",
            "headers": {"A": "y"},
        },
    )
    e = parse(doc, env).export
    assert (e.protocol, e.endpoint, e.timeout) == ("grpc", "http://yaml:4317", 3.0)
    assert e.compression == "none"  # not in YAML: the environment still applies
    assert dict(e.header_items()) == {"a": "y", "b": "env"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {E + "PROTOCOL": "http/json"},
            f"{E}PROTOCOL: 'http/json' is not supported, use http/protobuf",
        ),
        ({E + "LOGS_PROTOCOL": "smtp"}, f"{E}LOGS_PROTOCOL: must be one of"),
        ({E + "TIMEOUT": "10s"}, f"{E}TIMEOUT: must be a number of milliseconds"),
        ({E + "TIMEOUT": "0"}, f"{E}TIMEOUT: must be greater than 0"),
        (
            {E + "ENDPOINT": "collector:4317"},
            f"{E}ENDPOINT: must be a URL with an http:// or https://",
        ),
        ({E + "INSECURE": "maybe"}, f"{E}INSECURE: must be true or false"),
        ({E + "HEADERS": "a=1,justtext"}, f"{E}HEADERS: item 2 is not key=value"),
        ({E + "HEADERS": "a=1\x01"}, f"{E}HEADERS: header values must be printable"),
        ({E + "CLIENT_KEY": "/k.pem"}, "export: client_certificate_file and client_key_file"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], expected: str) -> None:
    assert str(config_error(base_doc(), env)).startswith(expected)


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    doc = set_path(base_doc(), "state_path", "state/bridge.db")
    doc = set_path(doc, "export.certificate_file", "ca.pem")
    doc = set_path(doc, "domains.0.ca_file", "daily-ca.pem")
    doc = set_path(doc, "domains.0.export.client_certificate_file", "/abs/c.pem")
    doc = set_path(doc, "domains.0.export.client_key_file", "k.pem")
    env = {E + "CLIENT_KEY": "env-relative.pem", E + "CLIENT_CERTIFICATE": "c.pem"}
    s = parse(doc, env, base_dir=tmp_path)
    assert s.state_path == tmp_path / "state/bridge.db"
    assert s.export.certificate_file == tmp_path / "ca.pem"
    assert s.export.client_key_file == Path("env-relative.pem")  # env paths stay as given
    d = s.domains[0]
    assert d.ca_file == tmp_path / "daily-ca.pem"
    assert d.export.certificate_file == tmp_path / "ca.pem"
    assert (d.export.client_certificate_file, d.export.client_key_file) == (
        Path("/abs/c.pem"),
        tmp_path / "k.pem",
    )


# --- other normalisations --------------------------------------------------------------------


def test_normalisations() -> None:
    doc = base_doc()
    doc["domains"][0].update(
        log_level="debug",
        severity_map={"1": "warning", 3: "fatal"},
        api_url="https://api.daily.co/v1/",
        resource_attributes={"s": "x", "i": 1, "f": 1.5, "b": True},
    )
    doc["export"] = {"protocol": "HTTP/PROTOBUF", "compression": "GZIP", "headers": {"n": 7}}
    s = parse(doc)
    d = s.domains[0]
    assert d.log_level == "DEBUG"
    assert d.severity_map == {0: "ERROR", 1: "WARN", 2: "DEBUG", 3: "FATAL"}
    assert d.api_url == "https://api.daily.co/v1"
    assert d.resource_attributes == {"s": "x", "i": 1, "f": 1.5, "b": True}
    assert type(d.resource_attributes["b"]) is bool
    assert (s.export.protocol, s.export.compression) == ("http/protobuf", "gzip")
    assert s.export.header_items() == [("n", "7")]


def test_domain_defaults() -> None:
    d = parse(base_doc()).domains[0]
    assert (d.api_url, d.enabled, d.poll_interval, d.initial_lookback) == (
        "https://api.daily.co/v1",
        True,
        15.0,
        3600.0,
    )
    assert (d.lookback, d.settle_lag, d.session_grace, d.max_quiet_interval) == (120, 5, 600, 60)
    assert (d.log_level, d.include_logs, d.include_metrics, d.metrics_as_logs) == (
        None,
        True,
        False,
        False,
    )
    assert (d.rooms, d.requests_per_second, d.page_size, d.request_timeout) == ([], 5.0, 500, 30)
    assert d.severity_map == {0: "ERROR", 1: "INFO", 2: "DEBUG"}


def test_empty_optional_values_mean_unset() -> None:
    doc = set_path(base_doc(), "domains.0.log_level", "${LEVEL:-}")
    doc = set_path(doc, "export.logs_endpoint", "${LOGS:-}")
    doc = set_path(doc, "export.insecure", "")
    doc = set_path(doc, "health.staleness", "")
    doc["self_telemetry"] = None  # every line of the section commented out
    s = parse(doc)
    assert (s.domains[0].log_level, s.export.logs_endpoint, s.export.insecure) == (None, None, None)
    assert s.health.staleness is None


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9464", "127.0.0.1", 9464),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("[::1]:9464", "::1", 9464),
    ],
)
def test_health_listen(listen: str, host: str, port: int) -> None:
    h = HealthSettings(listen=listen)
    assert (h.host, h.port) == (host, port)


def test_models_are_frozen_and_buildable_directly() -> None:
    d = DomainSettings(name="acme", api_key="k")  # type: ignore[arg-type]
    assert d.export == ExportSettings()
    with pytest.raises(ValueError, match="frozen"):
        d.poll_interval = 1.0
    assert ExportSettings(protocol="http/protobuf").endpoint == "http://127.0.0.1:4318"


def test_load_settings_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains:\n  - name: acme\n   api_key: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line 3"):
        load_settings(bad, {})


def test_python_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("domains: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(path, {})


# --- secrets never leak ----------------------------------------------------------------------


def secret_doc(**domain_extra: Any) -> dict[str, Any]:
    return {
        "export": {"headers": {"DD-API-KEY": HEADER_SECRET}},
        "domains": [{"name": "acme", "api_key": API_SECRET, **domain_extra}],
    }


SECRET_ENV = {E + "HEADERS": f"x-env={ENV_HEADER_SECRET}"}
SECRETS = (API_SECRET, HEADER_SECRET, ENV_HEADER_SECRET)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_render_effective_masks_secrets() -> None:
    doc = secret_doc(export={"headers": {"X-Domain": HEADER_SECRET + "-domain"}})
    s = parse(doc, SECRET_ENV)
    rendered = render_effective(s)
    assert_no_secret(rendered)
    assert rendered.count("'***'") == 1 + 2 + 3  # api key, global headers, domain headers
    reloaded = yaml.safe_load(rendered)
    assert reloaded["domains"][0]["poll_interval"] == "15s"
    assert reloaded["export"]["timeout"] == "10s"
    assert reloaded["domains"][0]["export"]["headers"] == {
        "dd-api-key": "***",
        "x-env": "***",
        "x-domain": "***",
    }
    for text in (repr(s), str(s), repr(s.domains[0]), repr(s.export)):
        assert_no_secret(text)
    # The transport does get the real values.
    assert ("dd-api-key", HEADER_SECRET) in s.export.header_items()
    assert s.domains[0].api_key.get_secret_value() == API_SECRET


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("domains.0.api_key", API_SECRET + " trailing-word"),
        ("domains.0.api_key", API_SECRET + "\x00"),
        ("domains.0.api_key", [API_SECRET]),
        ("domains.0.api_key", {"k": API_SECRET}),
        ("export.headers", {"x-bad": HEADER_SECRET + "\nx"}),
        ("export.headers", {"x-bad": [HEADER_SECRET]}),
        ("export.headers", {"x-ok": HEADER_SECRET, "bad name": HEADER_SECRET}),
        ("domains.0.poll_interval", API_SECRET),  # a secret pasted into the wrong field
        ("export.timeout", HEADER_SECRET),
        ("domains.0.export", {"headers": {"x-d": HEADER_SECRET + "\x7f"}}),
        ("domains.0.export", {"timeout": ENV_HEADER_SECRET}),
        ("domains.0.bogus", API_SECRET),
    ],
)
def test_config_errors_never_show_secrets(where: str, value: Any) -> None:
    err = config_error(set_path(secret_doc(), where, value), SECRET_ENV)
    assert str(err)
    assert_no_secret(str(err))
    assert_no_secret(repr(err.problems))


def test_env_header_errors_never_show_secrets() -> None:
    env = {E + "HEADERS": f"x-a={ENV_HEADER_SECRET}%0A,{ENV_HEADER_SECRET}"}
    err = config_error(base_doc(), env)
    assert_no_secret(str(err))


def test_yaml_syntax_errors_never_show_secrets(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"domains:\n  - name: acme\n    api_key: {API_SECRET}: {API_SECRET}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert "line 3" in str(info.value)
    assert_no_secret(str(info.value))


def test_key_file_content_never_shown(tmp_path: Path) -> None:
    key = write_key(tmp_path / "key", API_SECRET + " junk\n")
    err = config_error({"domains": [{"name": "acme", "api_key_file": str(key)}]})
    assert str(err) == "domains[0].api_key: must not contain whitespace or control characters"


# --- the example config ----------------------------------------------------------------------


def model_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if name == "config_path":  # set by load_settings, not a YAML key
            continue
        keys.add(name)
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and get_origin(annotation) is None:
                if issubclass(annotation, BaseModel):
                    keys |= model_keys(annotation)
            else:
                stack.extend(get_args(annotation))
    return keys


def test_example_config_loads() -> None:
    s = load_settings(EXAMPLE, {"DAILY_API_KEY": API_SECRET})
    assert [d.name for d in s.domains] == ["acme"]
    assert s.domains[0].api_key.get_secret_value() == API_SECRET
    assert_no_secret(render_effective(s))


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    keys = model_keys(Settings)
    assert {"api_key_file", "max_quiet_interval", "batch_size", "interval"} <= keys
    missing = sorted(k for k in keys if not re.search(rf"(?m)^[\s#-]*{re.escape(k)}:", text))
    assert not missing, f"not documented in {EXAMPLE.name}: {missing}"
