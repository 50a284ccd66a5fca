"""Plain data types shared by the client, the cursor and the pipeline (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def end_time(self) -> int | None:
        if self.ongoing or self.duration is None:
            return None
        return self.start_time + self.duration
