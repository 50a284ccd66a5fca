"""The world model: a meeting session and its participants, as the simulator holds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Participant:
    participant_id: str
    user_id: str | None
    user_name: str | None
    join_time: int  # Unix s
    leave_time: int | None  # Unix s; None: stays while the meeting lasts
    skew_ms: int
    browser: str
    audio_track: str
    video_track: str


@dataclass(slots=True)
class Meeting:
    domain: str
    index: int
    id: str
    room: str
    start_time: int  # Unix s
    end_time: int | None  # Unix s; None: never ends
    live: bool
    participants: list[Participant]
    first_ms: int  # first record
    span_ms: int  # first to last record
    n_records: int
    mix_seed: int
    sort_key: tuple[int, str] = (0, "")
    # Exact start and end (Unix s); default: start_time / end_time. A churning meeting starts
    # and ends between two whole seconds: it is listed, and ongoing, only from `begins` on.
    begins: float = -1.0
    ends: float | None = -1.0
    churn: bool = False
    late_visible_ms: int | None = None  # churning: when its late batch becomes visible

    def __post_init__(self) -> None:
        if self.begins < 0:
            self.begins = float(self.start_time)
        if self.ends is not None and self.ends < 0:
            self.ends = None if self.end_time is None else float(self.end_time)

    def ongoing(self, now: float) -> bool:
        return self.begins <= now and (self.ends is None or now < self.ends)
