"""Plain data types shared by the client, the cursor and the pipeline (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A Daily log record exactly as decoded from the JSON response. Kept as a dict rather than
# a dataclass: the hot path touches every record once, and unknown keys must survive.
DailyRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Meeting:
    """One meeting session as `GET /meetings` describes it (`id` is the `mtgSessionId`)."""

    id: str
    room: str
    start_time: int  # Unix seconds
    duration: int | None  # seconds; None while ongoing
    ongoing: bool
    # The `/meetings` entry as Daily sent it, kept only when discovery asked for the
    # participants (`meeting_summaries`): the summary of an ended meeting is built from it.
    entry: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def end_time(self) -> int | None:
        if self.ongoing or self.duration is None:
            return None
        return self.start_time + self.duration
