"""The record generator: one meeting's log records and metric samples, column-wise.

Records are stored in ``array`` objects (under 20 bytes a record) in generation order,
which is ASC ``time`` order, so a window is two bisects. Historical meetings generate every
record at once from a seeded ``random.Random``; live meetings grow with the clock; churning
meetings generate their whole life (and a late batch) when they are built.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from .config import SimulatorConfig
from .model import Meeting
from .vocabulary import METRIC_JITTER_MS, MSG_TABLE, UPLOAD_DELAY_MS, mix64


class Records:
    """One meeting's log records, column-wise, in generation (= ASC time) order."""

    __slots__ = (
        "_dup_thr",
        "_group_thr",
        "_late_thr",
        "_n_participants",
        "_rng",
        "_tie_left",
        "late",
        "msg",
        "off",
        "part",
        "peer",
        "t",
        "vis",
    )

    def __init__(self, rng: random.Random, config: SimulatorConfig, n_participants: int):
        self.t = array("q")  # time, ms since epoch
        self.off = array("i")  # clientTime - time, ms
        self.msg = array("B")
        self.part = array("B")
        self.peer = array("h")  # participant index, -1 for null
        self.late = array("B") if config.late_ratio > 0 and config.late_delay > 0 else None
        # When each record becomes visible (ms), for records uploaded after their `time`
        # (a churning meeting's late batch); None: at its time (or per `late`).
        self.vis: array[int] | None = None
        self._rng = rng
        self._n_participants = n_participants
        self._tie_left = 0
        self._dup_thr = int(config.duplicate_ratio * 65536)
        self._late_thr = int(config.late_ratio * 65536)
        # A tie group of g records adds g-1 ties; sizes 2..7 average 3.5 ties a group, so
        # starting a group with probability p gives a tie fraction of 3.5p / (1 + 3.5p).
        r = config.tie_ratio
        p = 1.0 if r >= 0.999 else r / (3.5 * (1.0 - r))
        self._group_thr = int(min(1.0, p) * 65536)

    def __len__(self) -> int:
        return len(self.msg)

    def step(self, skews: Sequence[int]) -> bool:
        """Append one record except its time; True when it needs a new (later) time."""
        bits = self._rng.getrandbits(96)
        k = len(self.msg)
        if k and (bits & 0xFFFF) < self._dup_thr:
            self.off.append(self.off[k - 1])
            self.msg.append(self.msg[k - 1])
            self.part.append(self.part[k - 1])
            self.peer.append(self.peer[k - 1])
            if self.late is not None:
                self.late.append(self.late[k - 1])
            return False
        if k and self._tie_left > 0:
            self._tie_left -= 1
            new_time = False
        else:
            new_time = True
            if ((bits >> 16) & 0xFFFF) < self._group_thr:
                self._tie_left = 1 + ((bits >> 32) & 0xFF) % 6
        n = self._n_participants
        part = ((bits >> 50) & 0xFF) % n
        peer = -1  # null peerId, for 5 records in 8
        if n > 1 and ((bits >> 58) & 7) >= 5:
            peer = (part + 1 + ((bits >> 61) & 7) % (n - 1)) % n
        self.msg.append(MSG_TABLE[(bits >> 40) & 0x3FF])
        self.part.append(part)
        self.peer.append(peer)
        self.off.append(skews[part] - ((bits >> 64) & 0xFFF) % UPLOAD_DELAY_MS)
        if self.late is not None:
            self.late.append(1 if ((bits >> 80) & 0xFFFF) < self._late_thr else 0)
        return new_time

    def nbytes(self) -> int:
        cols = (self.t, self.off, self.msg, self.part, self.peer)
        total = sum(c.itemsize * len(c) for c in cols)
        return total + (len(self.late) if self.late is not None else 0)


class LiveRecords(Records):
    __slots__ = ("_max", "_rate", "_start_ms")

    def __init__(
        self, rng: random.Random, config: SimulatorConfig, meeting: Meeting, silent: bool = False
    ):
        super().__init__(rng, config, len(meeting.participants))
        self._start_ms = meeting.first_ms
        self._rate = config.live_records_per_second
        self._max: int | None = 0 if silent else None
        if config.live_duration is not None and not silent:
            self._max = math.floor(config.live_duration * self._rate)

    def extend_to(self, now_ms: int, skews: Sequence[int]) -> None:
        if now_ms < self._start_ms:
            return
        target = math.floor((now_ms - self._start_ms) * self._rate / 1000.0) + 1
        if self._max is not None:
            target = min(target, self._max)
        while len(self.msg) < target:
            i = len(self.msg)
            if self.step(skews) or not self.t:
                self.t.append(self._start_ms + math.floor(i * 1000.0 / self._rate))
            else:
                self.t.append(self.t[-1])


class SilentRecords(LiveRecords):
    """A silent ongoing meeting that said a few words before the simulator started."""

    __slots__ = ()

    def __init__(
        self, rng: random.Random, config: SimulatorConfig, meeting: Meeting, words_ms: int
    ):
        super().__init__(rng, config, meeting, silent=True)
        skews = [p.skew_ms for p in meeting.participants]
        for k in range(config.live_silent_words):
            self.step(skews)
            self.t.append(words_ms + 100 * k)  # a few words, 100 ms apart
        self._max = len(self.msg)


class ChurnRecords(Records):
    """A churning meeting's records, generated at once: ``churn_rate`` records/s from its start
    to its end (each visible at its own ``time``), plus, for some, a late batch whose times lie
    in the meeting's last seconds and which becomes visible ``churn_late_delay`` after the end.
    """

    __slots__ = ()

    def __init__(
        self, rng: random.Random, config: SimulatorConfig, meeting: Meeting, late: bool
    ) -> None:
        super().__init__(rng, config, len(meeting.participants))
        assert meeting.ends is not None
        skews = [p.skew_ms for p in meeting.participants]
        start_ms = meeting.first_ms
        end_ms = math.floor(meeting.ends * 1000)
        rate = config.churn_rate
        n = math.floor((end_ms - start_ms) * rate / 1000.0)
        times: list[int] = []
        for i in range(n):
            if self.step(skews) or not times:
                times.append(start_ms + math.floor(i * 1000.0 / rate))
            else:
                times.append(times[-1])
        visible = list(times)
        if late:
            k_late = config.churn_late_records
            span = min(5000, end_ms - start_ms)
            late_vis = end_ms + math.floor(config.churn_late_delay * 1000)
            for k in range(k_late):
                self.step(skews)
                times.append(end_ms - span + (k * span) // max(1, k_late))
                visible.append(late_vis)
        # Time order (ASC = generation order for the window bisects); the late batch after
        # the regular records of the same millisecond.
        order = sorted(range(len(times)), key=lambda i: (times[i], i >= n, i))
        self.t = array("q", [times[i] for i in order])
        self.vis = array("q", [visible[i] for i in order])
        self.off = array("i", [self.off[i] for i in order])
        self.msg = array("B", [self.msg[i] for i in order])
        self.part = array("B", [self.part[i] for i in order])
        self.peer = array("h", [self.peer[i] for i in order])
        if self.late is not None:
            self.late = array("B", [self.late[i] for i in order])

    def extend_to(self, now_ms: int, skews: Sequence[int]) -> None:
        return None


@dataclass(slots=True)
class MetricSamples:
    t: array[int]
    part: array[int]
    k: array[int]


def generate_history(meeting: Meeting, config: SimulatorConfig) -> Records:
    rng = random.Random(f"{config.seed}:{meeting.domain}:{meeting.index}")
    recs = Records(rng, config, len(meeting.participants))
    skews = [p.skew_ms for p in meeting.participants]
    new_flags = bytearray(meeting.n_records)
    step = recs.step
    distinct = 0
    for k in range(meeting.n_records):
        if step(skews) or k == 0:
            new_flags[k] = 1
            distinct += 1
    # Times are laid out after the structure is known so the last record lands exactly
    # at first + span: the meeting header (start, duration) was derived from them.
    gaps = [rng.expovariate(1.0) for _ in range(max(0, distinct - 1))]
    scale = meeting.span_ms / (sum(gaps) or 1.0)
    times = recs.t
    cur = float(meeting.first_ms)
    last = meeting.first_ms
    g = 0
    for k in range(meeting.n_records):
        if new_flags[k] and k:
            cur += gaps[g] * scale
            g += 1
            last = max(last + 1, int(cur))
        times.append(last)
    return recs


def metric_samples(meeting: Meeting, until_ms: int, interval_ms: int) -> MetricSamples:
    # Daily samples once a second participant is present: first sample one interval later.
    joins = sorted(p.join_time for p in meeting.participants)
    rows: list[tuple[int, int, int]] = []
    if len(joins) >= 2:
        second_ms = joins[1] * 1000
        for pi, p in enumerate(meeting.participants):
            anchor = max(p.join_time * 1000, second_ms)
            stop = until_ms if p.leave_time is None else min(until_ms, p.leave_time * 1000)
            k = 1
            while True:
                jitter = mix64(meeting.mix_seed ^ (pi << 40) ^ k) % METRIC_JITTER_MS
                t = anchor + k * interval_ms + jitter
                if t > stop:
                    break
                rows.append((t, pi, k))
                k += 1
    rows.sort()
    return MetricSamples(
        t=array("q", [r[0] for r in rows]),
        part=array("B", [r[1] for r in rows]),
        k=array("I", [r[2] for r in rows]),
    )
