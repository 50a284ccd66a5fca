"""The simulated account's meetings: built once from the seed, per domain.

Historical meetings lie in ``[base_time - history, base_time - 30 s]``; live and silent
meetings start when the simulator does; churning meetings start during the run. Live and
churning meetings own their record stores from the start (their records depend on the
clock), historical ones generate theirs on demand (see ``store.py``).
"""

from __future__ import annotations

import math
import random

from .config import SimulatorConfig
from .model import Meeting, Participant
from .records import ChurnRecords, LiveRecords, SilentRecords
from .vocabulary import BROWSERS, USER_NAMES, new_uuid


class World:
    """Every meeting of every domain, with the indexes the API needs."""

    def __init__(self, config: SimulatorConfig, base_time: float, live_start: float) -> None:
        self.config = config
        self.base_time = base_time
        self.live_start = live_start
        self.meetings: dict[str, list[Meeting]] = {}  # sorted newest first
        self.by_id: dict[str, Meeting] = {}
        self.by_participant: dict[str, tuple[Meeting, int]] = {}
        self.live: dict[tuple[str, int], LiveRecords | ChurnRecords] = {}
        for domain in config.domains:
            self._build_domain(domain)

    def _participants(
        self, rng: random.Random, start: int, end: int | None, live: bool
    ) -> list[Participant]:
        out: list[Participant] = []
        for i in range(self.config.participants_per_meeting):
            join = start if i == 0 else start + rng.randint(0, 20)
            if end is None or live:
                leave = end
            elif i == 0:
                leave = end  # the meeting ends when its last participant leaves
            else:
                leave = max(join + 1, end - rng.randint(0, 15))
            if rng.random() < 0.15:
                skew = rng.choice((-1, 1)) * rng.randint(3600_000, 6 * 3600_000)
            else:
                skew = rng.randint(-3000, 3000)
            named = rng.random() < 0.7
            out.append(
                Participant(
                    participant_id=new_uuid(rng),
                    user_id=new_uuid(rng) if named else None,
                    user_name=rng.choice(USER_NAMES) if named else None,
                    join_time=join,
                    leave_time=leave,
                    skew_ms=skew,
                    browser=rng.choice(BROWSERS),
                    audio_track=new_uuid(rng),
                    video_track=new_uuid(rng),
                )
            )
        return out

    def _build_domain(self, domain: str) -> None:
        cfg = self.config
        base_ms = math.floor(self.base_time * 1000)
        window_ms = max(1000, math.floor((cfg.history - 30.0) * 1000))
        meetings: list[Meeting] = []
        for index in range(cfg.meetings_per_domain):
            rng = random.Random(f"{cfg.seed}:{domain}:{index}:meta")
            mid = new_uuid(rng)
            room = rng.choice(cfg.rooms)
            span = int(rng.uniform(0.15, 0.7) * window_ms)
            span = min(window_ms, max(span, 2 * cfg.records_per_meeting))
            first_ms = base_ms - window_ms - 30_000 + int(rng.uniform(0, window_ms - span))
            start = math.floor((first_ms - rng.uniform(0, 30_000)) / 1000)
            end = math.ceil((first_ms + span) / 1000) + rng.randint(0, 20)
            meetings.append(
                Meeting(
                    domain=domain,
                    index=index,
                    id=mid,
                    room=room,
                    start_time=start,
                    end_time=end,
                    live=False,
                    participants=self._participants(rng, start, end, live=False),
                    first_ms=first_ms,
                    span_ms=span,
                    n_records=cfg.records_per_meeting,
                    mix_seed=rng.getrandbits(64),
                )
            )
        if cfg.live:
            live_ms = math.floor(self.live_start * 1000)
            start = math.floor(self.live_start)
            live_end = None if cfg.live_duration is None else math.ceil(start + cfg.live_duration)
            words_ms = live_ms - math.floor(cfg.live_silent_words_ago * 1000)
            for j in range(cfg.live_meetings + cfg.live_silent_meetings):
                index = cfg.meetings_per_domain + j
                rng = random.Random(f"{cfg.seed}:{domain}:{index}:meta")
                silent = j >= cfg.live_meetings
                words = silent and cfg.live_silent_words > 0
                # A silent meeting that spoke before the start began a second before that.
                m_start = math.floor(words_ms / 1000) - 1 if words else start
                meeting = Meeting(
                    domain=domain,
                    index=index,
                    id=new_uuid(rng),
                    room=rng.choice(cfg.rooms),
                    start_time=m_start,
                    end_time=live_end,
                    live=True,
                    participants=self._participants(rng, m_start, live_end, live=True),
                    first_ms=live_ms,
                    span_ms=0,
                    n_records=0,
                    mix_seed=rng.getrandbits(64),
                )
                meetings.append(meeting)
                records_rng = random.Random(f"{cfg.seed}:{domain}:{index}")
                self.live[(domain, index)] = (
                    SilentRecords(records_rng, cfg, meeting, words_ms)
                    if words
                    else LiveRecords(records_rng, cfg, meeting, silent)
                )
        first_churn = cfg.meetings_per_domain
        if cfg.live:
            first_churn += cfg.live_meetings + cfg.live_silent_meetings
        for j in range(cfg.churn_meetings):
            meetings.append(self._churn_meeting(domain, first_churn + j, j))
        for m in meetings:
            m.sort_key = (-m.start_time, m.id)
            self.by_id[m.id] = m
            for pi, p in enumerate(m.participants):
                self.by_participant[p.participant_id] = (m, pi)
        meetings.sort(key=lambda m: m.sort_key)
        self.meetings[domain] = meetings

    def _churn_meeting(self, domain: str, index: int, j: int) -> Meeting:
        """The j-th churning meeting: it starts j x churn_over / churn_meetings (+ churn_delay)
        after the simulator, lasts a seeded duration, and may upload a late batch."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}:{domain}:{index}:meta")
        begins = self.live_start + cfg.churn_delay + j * cfg.churn_over / cfg.churn_meetings
        begins = math.floor(begins * 1000) / 1000  # whole milliseconds, as record times
        duration = rng.uniform(cfg.churn_min_duration, cfg.churn_max_duration)
        ends = math.floor((begins + duration) * 1000) / 1000
        late = rng.random() < cfg.churn_late_ratio and cfg.churn_late_records > 0
        start, end = math.floor(begins), math.ceil(ends)
        participants = self._participants(rng, start, end, live=True)
        for p in participants:
            p.join_time = min(p.join_time, max(start, end - 1))  # nobody joins after the end
        meeting = Meeting(
            domain=domain,
            index=index,
            id=new_uuid(rng),
            room=rng.choice(cfg.rooms),
            start_time=start,
            end_time=end,
            live=True,
            participants=participants,
            first_ms=math.floor(begins * 1000),
            span_ms=math.floor(ends * 1000) - math.floor(begins * 1000),
            n_records=0,
            mix_seed=rng.getrandbits(64),
            begins=begins,
            ends=ends,
            churn=True,
            late_visible_ms=(
                math.floor(ends * 1000) + math.floor(cfg.churn_late_delay * 1000) if late else None
            ),
        )
        records_rng = random.Random(f"{cfg.seed}:{domain}:{index}")
        self.live[(domain, index)] = ChurnRecords(records_rng, cfg, meeting, late)
        return meeting

    def domain_meetings(self, domain: str) -> list[Meeting]:
        return self.meetings[domain]

    def resolve(
        self, domain: str, mtg: str | None, user: str | None
    ) -> tuple[Meeting, int | None] | None:
        """The meeting and participant a /logs query names, None when it names nothing."""
        meeting: Meeting | None = None
        participant: int | None = None
        if mtg is not None:
            meeting = self.by_id.get(mtg)
            if meeting is None:
                return None
        if user is not None:
            hit = self.by_participant.get(user)
            if hit is None or (meeting is not None and hit[0] is not meeting):
                return None
            meeting, participant = hit
        if meeting is None or meeting.domain != domain:
            return None
        return meeting, participant
