"""Paging and page caps, pure: which slice of an ordered selection one request answers.

``/v1/logs`` pages by ``offset`` (DESC stable by time unless configured otherwise, short
pages seeded by the request itself); ``/v1/meetings`` pages by a meeting-id cursor.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar


def page(
    t: Sequence[int],
    idx: list[int],
    desc: bool,
    offset: int,
    limit: int,
    desc_ties_reversed: bool = False,
) -> list[int]:
    """The ``offset``/``limit`` page of ``idx`` (indices into ``t``, ASC) in the given order."""
    if not desc:
        return idx[offset : offset + limit]
    if desc_ties_reversed:
        return idx[::-1][offset : offset + limit]
    # DESC sorted by time only, stably: groups of equal time, newest group first,
    # each group in generation order. Stop once the page is covered.
    need = offset + limit
    out: list[int] = []
    end = len(idx)
    while end > 0 and len(out) < need:
        begin = end - 1
        tv = t[idx[begin]]
        while begin > 0 and t[idx[begin - 1]] == tv:
            begin -= 1
        out.extend(idx[begin:end])
        end = begin
    return out[offset:need]


def page_size(seed: int, short_pages: bool, request_key: str, remaining: int, limit: int) -> int:
    """How many records the page holds: ``limit`` (capped by what remains), or with
    ``short_pages`` sometimes fewer although more exist."""
    n = max(0, min(limit, remaining))
    if short_pages and n > 1:
        # Seeded by the request itself: a retry of the same request gets the same page.
        rng = random.Random(f"{seed}:short:{request_key}")
        if rng.random() < 0.5:
            n = rng.randint(1, n - 1)
    return n


class _Keyed(Protocol):
    @property
    def sort_key(self) -> tuple[int, str]: ...


K = TypeVar("K", bound=_Keyed)


def cursor_page(
    matching: list[K], cursor: tuple[int, str] | None, after: bool, limit: int
) -> list[K]:
    """A page of ``matching`` (sorted by ``sort_key``, newest first) next to a cursor:
    ``after`` the items that follow it in list order, else the ``limit`` just before it."""
    if after and cursor is not None:
        return [m for m in matching if m.sort_key > cursor][:limit]
    if cursor is not None:
        older = [m for m in matching if m.sort_key < cursor]
        return older[max(0, len(older) - limit) :] if limit else []
    return matching[:limit]
