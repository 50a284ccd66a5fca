"""The per-domain switches of the sources beside the call logs (issue 17): defaults, values,
error texts with their YAML path, the example config and check-config output."""

from __future__ import annotations

from typing import Any

import pytest

from daily_otel_bridge.config.settings import (
    ConfigError,
    DomainSettings,
    parse_settings,
    render_effective,
)

SWITCHES = ("meeting_summaries", "presence", "api_logs", "api_logs_bodies", "room_label")


def doc(**domain: Any) -> dict[str, Any]:
    return {"domains": [{"name": "acme", "api_key": "k-123", **domain}]}


def domain_of(**domain: Any) -> DomainSettings:
    return parse_settings(doc(**domain), environ={}).domains[0]


def test_defaults() -> None:
    d = domain_of()
    assert (d.meeting_summaries, d.presence, d.api_logs, d.api_logs_bodies, d.room_label) == (
        True,
        False,
        False,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"meeting_summaries": False}, {"meeting_summaries": False}),
        ({"presence": True}, {"presence": True}),
        ({"api_logs": True}, {"api_logs": True, "api_logs_bodies": False}),
        ({"api_logs": True, "api_logs_bodies": True}, {"api_logs_bodies": True}),
        ({"room_label": True}, {"room_label": True}),
        ({"presence": "yes"}, {"presence": True}),  # YAML 1.1 spellings, as for every bool
        ({"room_label": "off"}, {"room_label": False}),
        ({"api_logs": "${API_LOGS:-true}"}, {"api_logs": True}),
    ],
)
def test_values(given: dict[str, Any], expected: dict[str, Any]) -> None:
    d = domain_of(**given)
    for key, value in expected.items():
        assert getattr(d, key) is value, key


@pytest.mark.parametrize(
    ("given", "line"),
    [
        ({"presence": "perhaps"}, "domains[0].presence: must be true or false"),
        ({"meeting_summaries": 2}, "domains[0].meeting_summaries: must be true or false"),
        ({"api_logs": []}, "domains[0].api_logs: must be true or false"),
        ({"room_label": None}, "domains[0].room_label: must be true or false"),
        ({"api_logs_bodies": True}, "domains[0]: api_logs_bodies needs api_logs: true"),
        (
            {"api_logs": False, "api_logs_bodies": True},
            "domains[0]: api_logs_bodies needs api_logs: true",
        ),
        ({"metrics": {"room_label": True}}, "domains[0].metrics: unknown key"),
    ],
)
def test_errors_name_their_path(given: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(doc(**given), environ={})
    lines = str(info.value).splitlines()
    assert any(text.startswith(line) for text in lines), lines


def test_check_config_shows_every_switch() -> None:
    text = render_effective(parse_settings(doc(api_logs=True), environ={}))
    for key in SWITCHES:
        assert f"\n  {key}: " in text or f"\n    {key}: " in text, key
    assert "api_logs: true" in text


def test_the_rest_of_the_contract_is_unchanged() -> None:
    # Only the five keys are new on a domain: the others keep their defaults.
    fields = set(DomainSettings.model_fields)
    assert set(SWITCHES) <= fields
    d = domain_of(presence=True, api_logs=True, room_label=True)
    assert d.include_logs is True
    assert d.include_metrics is False
    assert d.poll_interval == 15.0
