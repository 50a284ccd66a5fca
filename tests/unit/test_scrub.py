"""`core.secrets`, the one scrubber behind the log mask and configuration error text."""

from __future__ import annotations

import pytest

from daily_otel_bridge.core.secrets import MASK, scrub, scrub_value


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("nothing here", {"sekrit-value"}, "nothing here"),
        ("key=sekrit-value;", {"sekrit-value"}, f"key={MASK};"),
        ("a sekrit-value and sekrit-value", {"sekrit-value"}, f"a {MASK} and {MASK}"),
        # Longest first: the longer secret is masked whole, not left with a visible tail.
        ("tok=abcdef123456", {"abcdef", "abcdef123456"}, f"tok={MASK}"),
        ("anything", set(), "anything"),
    ],
)
def test_scrub(text: str, secrets: set[str], expected: str) -> None:
    assert scrub(text, secrets) == expected


def test_scrub_value_walks_containers_and_keeps_types() -> None:
    value = {"a": ["x sekrit-value", ("sekrit-value", 3)], "b": 1.5, "c": None}
    assert scrub_value(value, {"sekrit-value"}) == {
        "a": [f"x {MASK}", (MASK, 3)],
        "b": 1.5,
        "c": None,
    }
