"""The one secret scrubber, for log events and for configuration error text. No I/O.

Secrets are replaced longest first, so a secret that contains a shorter one is masked whole
rather than left half visible.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

MASK = "***"


def scrub(text: str, secrets: Collection[str]) -> str:
    """`text` with every occurrence of every secret replaced by `MASK`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub_value(value: Any, secrets: Collection[str]) -> Any:
    """`scrub` applied to every string inside dicts, lists and tuples; anything else as is."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v, secrets) for v in value)
    return value
