"""The ground truth: every record visible now, in the order a complete reader would see it."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .model import Meeting
from .render import render_log, render_metric
from .store import RecordStore
from .world import World


def ground_truth(
    world: World,
    store: RecordStore,
    now_ms: int,
    domain: str,
    session: str | None = None,
    kind: str = "logs",
    offset: int = 0,
    limit: int | None = None,
    with_visible: bool = False,
) -> Iterator[dict[str, Any]]:
    """Every record visible at ``now_ms``, ASC, rendered as ``/v1/logs`` renders it.

    ``session`` is a meeting id or a participant id; without it, the whole domain,
    ordered by time, then meeting index, then generation order. ``with_visible`` adds
    ``_visible``: when the record became visible (Unix s, ms resolution).
    """
    targets: list[tuple[Meeting, int | None]]
    if session is None:
        targets = [(m, None) for m in sorted(world.meetings[domain], key=lambda m: m.index)]
    else:
        found = world.resolve(domain, session, None) or world.resolve(domain, None, session)
        targets = [] if found is None else [found]
    streams: list[Iterator[tuple[int, int, int, Meeting, Any]]] = []
    for meeting, participant in targets:
        if kind == "metrics":
            samples, idx = store.select_metrics(meeting, now_ms, participant=participant)
            streams.append(_tagged(meeting, samples, samples.t, idx))
        else:
            recs, idx = store.select_logs(meeting, now_ms, participant=participant)
            streams.append(_tagged(meeting, recs, recs.t, idx))
    merged: Iterable[tuple[int, int, int, Meeting, Any]] = (
        streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: r[:3])
    )
    stop = None if limit is None else offset + limit
    for _, _, i, meeting, records in itertools.islice(merged, offset, stop):
        if kind == "metrics":
            out = render_metric(meeting, records, i)
            if with_visible:
                out["_visible"] = records.t[i] / 1000
        else:
            out = render_log(meeting, records, i)
            if with_visible:
                out["_visible"] = store.visible_ms(records, i) / 1000
        yield out


def _tagged(
    meeting: Meeting, records: Any, t: Sequence[int], idx: list[int]
) -> Iterator[tuple[int, int, int, Meeting, Any]]:
    for i in idx:
        yield t[i], meeting.index, i, meeting, records
