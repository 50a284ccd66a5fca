"""A deterministic stand-in for Daily's ``GET /v1/meetings`` and ``GET /v1/logs``.

Everything the simulator serves is derived from ``SimulatorConfig.seed``: two apps built
from equal configs (with a fixed ``base_time``) serve byte-identical answers. Records are
generated per meeting on first use, from ``random.Random(f"{seed}:{domain}:{index}")``, and
stored column-wise in ``array`` objects (under 20 bytes a record), so a million records
fit in a few tens of MB; a bounded LRU (``cache_meetings``) limits how many meetings are held.

Layout
------
* Historical meetings (``meetings_per_domain`` per domain) have every record between
  ``base_time - history`` and ``base_time - 30 s``. A meeting's ``start_time`` is 0-30 s
  before its first record; it ends 0-20 s after its last one. ``ongoing`` is computed from
  the clock, so a ``base_time`` in the future makes meetings (and records) appear over time.
* Live meetings (``live=True``) start when the app is created, whatever ``base_time`` is,
  and produce ``live_records_per_second`` records: record *i* has time
  ``start + i / rate`` (ties share the previous record's time) and appears once that time
  has passed. They end after ``live_duration`` seconds (never when ``None``).
  ``live_silent_meetings`` more are ongoing the same way but never produce a record (a room
  where nobody's client logs anything: the cheap-to-poll majority of a big account).
  With ``live_silent_words`` = K > 0 each of them logged K records (100 ms apart)
  ``live_silent_words_ago`` seconds before the app was created (and started a second
  before that), then nothing more: "said three words 30 s before the start".
* Churning meetings (``churn_meetings`` = N, independent of ``live``) start during the run:
  meeting *j* at ``churn_delay + j * churn_over / N`` seconds after the app was created
  (whole milliseconds), lasts a seeded duration in ``[churn_min_duration,
  churn_max_duration]`` and produces ``churn_rate`` records/s while ongoing (record *i* at
  ``start + i / rate``, visible at its own ``time``, ties as for live meetings). A seeded
  share ``churn_late_ratio`` of them upload a last batch of ``churn_late_records`` records
  whose times lie in the meeting's last 5 s (before its end) and which all become visible
  ``churn_late_delay`` seconds after the end. ``/v1/meetings`` lists a churning meeting only
  from its exact start (``start_time`` = that second, rounded down), as ongoing until its
  exact end; ``end_time`` is the end rounded up.
* ``tie_ratio`` of the records share their ``time`` with the previous record, in groups of
  2-7 (a client batch upload), with different ``clientTime`` values. ``duplicate_ratio``
  of the records are byte-identical copies of the previous one. ``late_ratio`` of the
  records become visible only ``late_delay`` seconds after their own ``time``.
* ``time`` has millisecond resolution and is printed with nine fractional digits.
  ``clientTime`` = ``time`` minus an upload delay (0-2.5 s) plus a per-participant clock
  skew (a few seconds; hours for about one participant in seven).
* ``level`` follows the inferred mapping 0=ERROR, 1=INFO, 2=DEBUG; the ``logLevel``
  filter uses it.

API behaviour (under ``/v1``; ``Authorization: Bearer <key>``, the key selects the domain)
------------------------------------------------------------------------------------------
* No header or an unknown/revoked key: 401 ``authentication-error``. A header that is not
  ``Bearer <token>``: 400 ``authorization-header-error``.
* Requests pass, in this order: fault queue, authentication, rate limit (a per-domain
  token bucket; 429 ``rate-limit-error`` with ``Retry-After`` unless disabled), random
  errors (``error_429_ratio`` of the requests answer 429, ``error_retry_after_ratio`` of those
  with ``Retry-After``; ``error_5xx_ratio`` answer 500/502/503/504 without it; drawn from a
  ``random.Random`` seeded by ``seed``, in arrival order).
* ``latency`` (+- ``latency_jitter``, uniform, seeded like the errors) delays every API answer,
  errors included, as a network round trip would; the answer is computed on arrival (rate
  limit, clock, visible records) and sent that much later. The wait is an ``asyncio.sleep``,
  so slow answers overlap: a client with several requests in flight gets them all back after
  one latency. Control endpoints answer at once.
* ``GET /v1/logs``: ``mtgSessionId`` and/or ``userSessionId`` (both given: both must
  match), ``order`` (ASC/DESC, any case, default DESC), ``startTime``/``endTime`` (integer
  ms; endTime defaults to now; inclusiveness per config), ``logLevel``, ``limit``
  (default 20; ``max_limit``, default 1000, is the largest page answered whatever ``limit``
  asks, as Daily may answer fewer records than asked), ``offset``, ``includeLogs``,
  ``includeMetrics``.
  Records sharing a ``time`` keep their generation order in both orders (DESC sorts by
  time only, stably) unless ``desc_ties_reversed``. ``logs`` and ``metrics`` are paged
  independently with the same window and order. With ``short_pages`` a page may hold
  fewer records than asked although more exist; which pages are short is a function of
  the request's parameters, so a retried request gets the same page.
* ``GET /v1/meetings``: ``room``, ``timeframe_start`` (``start_time >= v``),
  ``timeframe_end`` (``start_time < v``), ``ongoing``, ``no_participants``, ``limit``
  (default and max 100), cursors ``starting_after`` / ``ending_before`` (a meeting id;
  an unknown id is a 400). Newest ``start_time`` first, ties by id. ``total_count``
  counts every meeting matching the filters, ignoring the cursor. An ongoing meeting's
  ``duration`` is the time elapsed so far.

Control endpoints (no auth, never rate limited)
-----------------------------------------------
* ``GET /_sim/stats``: ``{"requests": {"meetings": n, "logs": n}, "status_counts":
  {"200": n, ...}, "requests_per_domain": {...}, "records_served": n,
  "metrics_served": n, "inflight": n, "max_inflight": n, "domains": {D: {...}}}``. Per
  domain (requests whose key names the domain, counted on arrival): ``requests``,
  ``inflight`` / ``max_inflight`` (API requests received and not yet answered, now / at
  most), ``limiter_429`` (429s from the simulator's own token bucket), ``random_429`` /
  ``random_5xx`` (from the error ratios), ``max_per_second`` (most arrivals within any
  1-second sliding window) and ``per_second`` (``{unix_second: arrivals}``, simulator clock).
  ``?arrivals=1`` adds ``arrivals``: the last 100,000 arrival times (simulator clock).
  A client pacing itself with a token bucket of rate r and burst b may legitimately put up
  to about b + r arrivals into one sliding second (a full bucket, then the refill): check
  ``max_per_second`` against that, or the rate over a longer span from ``arrivals``.
* ``GET /_sim/requests[?since=N]``: the API requests from the N-th on (wall-clock
  ``arrived`` / ``finished`` seconds, ``endpoint``, ``status``, ``user_agent``), as
  ``{"requests": [...], "next": n}``; the last 100 000 are kept. Who read a domain when:
  the replica tests check from it that no two replicas ever read one domain at once.
* ``GET /_sim/records?domain=D[&session=ID][&kind=logs|metrics][&offset=N][&limit=N]``:
  the ground truth, every record visible now, ASC, rendered exactly as ``/v1/logs``
  renders it, streamed as ``{"records": [...], "count": n}``. ``session`` is a meeting or
  participant id; without it, the whole domain, ordered by time, then meeting, then
  generation order. ``domain`` defaults to the first configured domain. ``&visible=1`` adds
  ``_visible`` to each record: when it became visible (Unix s), its ``time`` except for
  late records (``late_ratio``) and churning meetings' late batches.
* ``GET /_sim/meetings?domain=D``: every meeting (visible or not) with its participant
  ids and its number of log records visible now; ``begins`` / ``ends`` (exact, Unix s;
  ``ends`` null when it never ends), ``churn``, and ``late_visible_at`` (a churning meeting's
  late batch, null without one).
* ``POST /_sim/revoke?domain=D`` / ``POST /_sim/restore?domain=D``: the domain's key
  answers 401 / works again.
* ``POST /_sim/clock?advance=S``: moves the simulator's clock S seconds forward (late
  records, live records and future meetings appear; rate-limit buckets refill).
  ``GET /_sim/clock`` returns ``{"now": unix_seconds}``.
* ``POST /_sim/faults`` with a JSON object; ``GET /_sim/faults`` shows the state. Keys:

  - ``{"status": 503, "count": 5}``: the next 5 API requests answer 503 with a Daily-style
    body (``server-error`` for 5xx, ``rate-limit-error`` for 429, ...); 429 and 503 carry
    ``Retry-After`` unless the mode is ``none``.
  - ``{"hang_seconds": 30, "count": 1}``: the next request waits 30 s, then answers
    normally (the wait ends early when the app shuts down).
  - ``{"invalid_json": true, "count": 1}``: the next request answers 200 with a truncated
    JSON body.
  - ``"endpoint": "logs" | "meetings"``: with one of the three above, only that endpoint's
    requests consume the fault (default: any). Queued faults are consumed in order, one
    per request.
  - ``{"retry_after": "seconds" | "http-date" | "none"}``: the ``Retry-After`` format from
    now on.
  - ``{"not_found_session": "<id>"}``: ``/v1/logs`` for that meeting or participant id
    answers 404 ``not-found`` from now on.
  - ``{"clear": true}``: drop queued faults and not-found sessions, reset ``retry_after``.

CLI: ``python -m daily_otel_bridge.testing.simulator --help``; it prints one line
``listening on http://HOST:PORT/v1`` once ready, and stops on SIGTERM/SIGINT or after
``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import heapq
import itertools
import json
import math
import random
import re
import signal
import sys
import threading
import time
import uuid
from array import array
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache
from typing import Any

from aiohttp import web

__all__ = [
    "SIM_KEY",
    "RunningSimulator",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "add_churn_arguments",
    "churn_kwargs",
    "create_app",
    "main",
    "start_simulator",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulated Daily account holds and how its API misbehaves."""

    seed: int = 1
    domains: dict[str, str] = field(default_factory=lambda: {"demo": "demo-key"})
    meetings_per_domain: int = 5
    records_per_meeting: int = 200
    participants_per_meeting: int = 3
    rooms: list[str] = field(default_factory=lambda: ["standup", "sales-demo", "support-1"])
    tie_ratio: float = 0.3
    duplicate_ratio: float = 0.0
    late_ratio: float = 0.0
    late_delay: float = 0.0
    base_time: float | None = None
    history: float = 1800.0
    live: bool = False
    live_meetings: int = 1
    live_records_per_second: float = 5.0
    live_duration: float | None = None
    live_silent_meetings: int = 0
    live_silent_words: int = 0
    live_silent_words_ago: float = 30.0
    churn_meetings: int = 0
    churn_over: float = 150.0
    churn_delay: float = 0.0
    churn_min_duration: float = 15.0
    churn_max_duration: float = 60.0
    churn_rate: float = 2.0
    churn_late_ratio: float = 0.2
    churn_late_records: int = 20
    churn_late_delay: float = 10.0
    include_metrics_samples: bool = True
    metrics_interval: float = 15.0
    rate_limit_per_second: float | None = None
    rate_burst: float | None = None
    retry_after: bool = True
    max_limit: int = 1000
    meetings_max_limit: int = 100
    short_pages: bool = False
    end_time_inclusive: bool = True
    start_time_inclusive: bool = True
    desc_ties_reversed: bool = False
    cache_meetings: int = 2048
    latency: float = 0.0
    latency_jitter: float = 0.0
    error_429_ratio: float = 0.0
    error_5xx_ratio: float = 0.0
    error_retry_after_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("at least one domain is required")
        if len(set(self.domains.values())) != len(self.domains):
            raise ValueError("API keys must be unique: a key selects its domain")
        if not self.rooms:
            raise ValueError("at least one room name is required")
        ratios = ("tie_ratio", "duplicate_ratio", "late_ratio")
        for name in (*ratios, "error_429_ratio", "error_5xx_ratio", "error_retry_after_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.meetings_per_domain < 0 or self.records_per_meeting < 0:
            raise ValueError("meetings_per_domain and records_per_meeting must be >= 0")
        if not 1 <= self.participants_per_meeting <= 200:
            raise ValueError("participants_per_meeting must be within [1, 200]")
        if self.late_delay < 0 or self.history <= 0 or self.metrics_interval <= 0:
            raise ValueError("late_delay must be >= 0, history and metrics_interval > 0")
        if self.live and (self.live_meetings < 0 or self.live_records_per_second <= 0):
            raise ValueError("live_meetings must be >= 0 and live_records_per_second > 0")
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be > 0")
        if self.max_limit < 1 or self.meetings_max_limit < 1 or self.cache_meetings < 1:
            raise ValueError("max_limit, meetings_max_limit and cache_meetings must be >= 1")
        if self.error_429_ratio + self.error_5xx_ratio > 1.0:
            raise ValueError("error_429_ratio + error_5xx_ratio must be <= 1")
        if not 0 <= self.latency_jitter <= self.latency:
            raise ValueError("latency must be >= 0 and latency_jitter within [0, latency]")
        if self.live_silent_meetings < 0:
            raise ValueError("live_silent_meetings must be >= 0")
        if self.live_silent_words < 0 or self.live_silent_words_ago < 0:
            raise ValueError("live_silent_words and live_silent_words_ago must be >= 0")
        if self.churn_meetings < 0 or self.churn_over < 0 or self.churn_delay < 0:
            raise ValueError("churn_meetings, churn_over and churn_delay must be >= 0")
        if not 0 < self.churn_min_duration <= self.churn_max_duration:
            raise ValueError("need 0 < churn_min_duration <= churn_max_duration")
        if self.churn_rate <= 0 or self.churn_late_records < 0 or self.churn_late_delay < 0:
            raise ValueError("churn_rate must be > 0, churn_late_records and churn_late_delay >= 0")
        if not 0.0 <= self.churn_late_ratio <= 1.0:
            raise ValueError(f"churn_late_ratio must be within [0, 1], got {self.churn_late_ratio}")


# --------------------------------------------------------------------------------------
# Static vocabulary

# (message, level, code, weight). Levels: 0=ERROR, 1=INFO, 2=DEBUG (inferred, see module
# docstring); the first three rows are the seed example's own.
_MESSAGES: tuple[tuple[str, int, int | None, int], ...] = (
    ("disconnect on pagehide", 2, 7991, 3),
    ("leaving session", 1, 8000, 3),
    ("participant left", 1, 8020, 3),
    ("participant joined", 1, 8010, 4),
    ("sfu connection state: connected", 2, None, 6),
    ("sfu connection state: connecting", 2, None, 5),
    ("sfu connection state: disconnected", 1, None, 2),
    ("signaling connection established", 2, None, 5),
    ("ice connection state: checking", 2, None, 6),
    ("ice connection state: connected", 2, None, 6),
    ("received track: video", 2, None, 8),
    ("received track: audio", 2, None, 8),
    ("camera started", 1, None, 4),
    ("microphone muted", 2, None, 4),
    ("network quality changed: good", 2, None, 5),
    ("network quality changed: low", 1, 8030, 2),
    ("reconnecting to sfu", 1, 8040, 2),
    ("screen share started", 1, None, 2),
    ("cpu load high, reducing send resolution", 1, None, 2),
    ("bandwidth estimate: 1.21 Mbps", 2, None, 6),
    ('user agent: Mozilla/5.0 (X11; Linux x86_64) "Chrome/124"', 2, None, 2),
    ("room joined: caf\u00e9 \u2615", 2, None, 1),
    ("getUserMedia failed: NotAllowedError", 0, 7000, 1),
    ("websocket error: connection closed abnormally (1006)", 0, 7100, 1),
    ("failed to publish track: timeout", 0, None, 1),
)
_LEVEL_OF_MESSAGE: tuple[int, ...] = tuple(m[1] for m in _MESSAGES)
_LEVEL_BY_NAME: dict[str, int] = {"ERROR": 0, "INFO": 1, "DEBUG": 2}


def _message_table(size: int = 1024) -> bytes:
    # A lookup table turns 10 random bits into a weighted message choice in O(1).
    total = sum(m[3] for m in _MESSAGES)
    table = bytearray()
    for index, message in enumerate(_MESSAGES):
        table.extend([index] * (message[3] * size // total))
    table.extend([len(_MESSAGES) - 1] * (size - len(table)))
    return bytes(table[:size])


_MSG_TABLE = _message_table()
_USER_NAMES = ("Ana", "Bo", "Chen", "Dmitri", "Eve", "Femi", "Grace", "Hiro", "Ines", "Jon")
_BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")
_M64 = (1 << 64) - 1
_TWO64 = float(1 << 64)
_METRIC_JITTER_MS = 1000
_UPLOAD_DELAY_MS = 2500


def _mix64(x: int) -> int:
    # splitmix64: metric values are a pure function of (meeting, participant, sample), so
    # they need no stored state and no per-sample Random object.
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@lru_cache(maxsize=65536)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _iso_ms(ms: int) -> str:
    second, milli = divmod(ms, 1000)
    return f"{_iso_second(second)}.{milli:03d}000000Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --------------------------------------------------------------------------------------
# Meetings and records


@dataclass(slots=True)
class _Participant:
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
class _Meeting:
    domain: str
    index: int
    id: str
    room: str
    start_time: int  # Unix s
    end_time: int | None  # Unix s; None: never ends
    live: bool
    participants: list[_Participant]
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


class _Records:
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
        self.msg.append(_MSG_TABLE[(bits >> 40) & 0x3FF])
        self.part.append(part)
        self.peer.append(peer)
        self.off.append(skews[part] - ((bits >> 64) & 0xFFF) % _UPLOAD_DELAY_MS)
        if self.late is not None:
            self.late.append(1 if ((bits >> 80) & 0xFFFF) < self._late_thr else 0)
        return new_time

    def nbytes(self) -> int:
        cols = (self.t, self.off, self.msg, self.part, self.peer)
        total = sum(c.itemsize * len(c) for c in cols)
        return total + (len(self.late) if self.late is not None else 0)


class _LiveRecords(_Records):
    __slots__ = ("_max", "_rate", "_start_ms")

    def __init__(
        self, rng: random.Random, config: SimulatorConfig, meeting: _Meeting, silent: bool = False
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


class _SilentRecords(_LiveRecords):
    """A silent ongoing meeting that said a few words before the simulator started."""

    __slots__ = ()

    def __init__(
        self, rng: random.Random, config: SimulatorConfig, meeting: _Meeting, words_ms: int
    ):
        super().__init__(rng, config, meeting, silent=True)
        skews = [p.skew_ms for p in meeting.participants]
        for k in range(config.live_silent_words):
            self.step(skews)
            self.t.append(words_ms + 100 * k)  # a few words, 100 ms apart
        self._max = len(self.msg)


class _ChurnRecords(_Records):
    """A churning meeting's records, generated at once: ``churn_rate`` records/s from its start
    to its end (each visible at its own ``time``), plus, for some, a late batch whose times lie
    in the meeting's last seconds and which becomes visible ``churn_late_delay`` after the end.
    """

    __slots__ = ()

    def __init__(
        self, rng: random.Random, config: SimulatorConfig, meeting: _Meeting, late: bool
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
class _MetricSamples:
    t: array[int]
    part: array[int]
    k: array[int]


def _generate_history(meeting: _Meeting, config: SimulatorConfig) -> _Records:
    rng = random.Random(f"{config.seed}:{meeting.domain}:{meeting.index}")
    recs = _Records(rng, config, len(meeting.participants))
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


def _metric_samples(meeting: _Meeting, until_ms: int, interval_ms: int) -> _MetricSamples:
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
                jitter = _mix64(meeting.mix_seed ^ (pi << 40) ^ k) % _METRIC_JITTER_MS
                t = anchor + k * interval_ms + jitter
                if t > stop:
                    break
                rows.append((t, pi, k))
                k += 1
    rows.sort()
    return _MetricSamples(
        t=array("q", [r[0] for r in rows]),
        part=array("B", [r[1] for r in rows]),
        k=array("I", [r[2] for r in rows]),
    )


# --------------------------------------------------------------------------------------
# Errors, faults, rate limits


class RequestLog:
    """Every API request's arrival, finish and User-Agent (bounded), for `/_sim/requests`."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0  # entries discarded from the front once LIMIT is reached

    def record(
        self, endpoint: str, request: web.Request, status: int, arrived: float, finished: float
    ) -> None:
        self.entries.append(
            {
                "endpoint": endpoint,
                "status": status,
                "arrived": arrived,
                "finished": finished,
                "user_agent": request.headers.get("User-Agent", ""),
            }
        )
        if len(self.entries) > self.LIMIT:
            cut = len(self.entries) - self.LIMIT
            del self.entries[:cut]
            self.dropped += cut

    def since(self, index: int) -> dict[str, Any]:
        start = max(0, index - self.dropped)
        return {"requests": self.entries[start:], "next": self.dropped + len(self.entries)}


class _ApiError(Exception):
    def __init__(
        self, status: int, error: str, info: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(info)
        self.status = status
        self.error = error
        self.info = info
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = json.dumps({"error": self.error, "info": self.info})
        return web.Response(
            status=self.status, text=body, content_type="application/json", headers=self.headers
        )


def _error_type(status: int) -> str:
    return {
        400: "invalid-request-error",
        401: "authentication-error",
        403: "forbidden-error",
        404: "not-found",
        429: "rate-limit-error",
    }.get(status, "server-error" if status >= 500 else "invalid-request-error")


@dataclass(slots=True)
class _Fault:
    kind: str  # "status" | "hang" | "invalid_json"
    remaining: int
    endpoint: str  # "logs" | "meetings" | "any"
    status: int = 0
    hang_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "endpoint": self.endpoint,
            "status": self.status,
            "hang_seconds": self.hang_seconds,
        }


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


_ARRIVALS_KEPT = 100_000


@dataclass(slots=True)
class _DomainStats:
    """What a test of the client's pacing needs to see, counted where Daily would count it."""

    requests: int = 0
    inflight: int = 0
    max_inflight: int = 0
    limiter_429: int = 0
    random_429: int = 0
    random_5xx: int = 0
    max_per_second: int = 0
    per_second: dict[int, int] = field(default_factory=dict)
    # The last second of arrivals, for the sliding-window maximum; `arrivals` keeps more for
    # in-process tests (bounded: a long benchmark must not grow the simulator without end).
    _window: deque[float] = field(default_factory=deque)
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=_ARRIVALS_KEPT))

    def arrive(self, now: float) -> None:
        self.requests += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        second = math.floor(now)
        self.per_second[second] = self.per_second.get(second, 0) + 1
        self.arrivals.append(now)
        window = self._window
        window.append(now)
        while now - window[0] >= 1.0:
            window.popleft()
        self.max_per_second = max(self.max_per_second, len(window))

    def as_json(self, with_arrivals: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            "limiter_429": self.limiter_429,
            "random_429": self.random_429,
            "random_5xx": self.random_5xx,
            "max_per_second": self.max_per_second,
            "per_second": {str(k): v for k, v in sorted(self.per_second.items())},
        }
        if with_arrivals:
            out["arrivals"] = list(self.arrivals)
        return out


_INT_RE = re.compile(r"-?[0-9]+\Z")
_NUM_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    value = _opt_int_param(query, name)
    return default if value is None else value


def _opt_int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _INT_RE.match(raw):
        raise _ApiError(400, "invalid-request-error", f"{name} must be an integer")
    return int(raw)


def _num_param(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _NUM_RE.match(raw):
        raise _ApiError(400, "invalid-request-error", f"{name} must be a number")
    return float(raw)


def _bool_param(query: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _ApiError(400, "invalid-request-error", f"{name} must be true or false")


# --------------------------------------------------------------------------------------
# The simulator


class Simulator:
    """State and request handlers behind one app; tests may read it via ``app[SIM_KEY]``."""

    def __init__(self, config: SimulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self._clock: Clock = clock or time.time
        self._offset = 0.0
        created = self._clock()
        self.base_time = created if config.base_time is None else config.base_time
        self.live_start = created
        self._domain_by_key = {key: domain for domain, key in config.domains.items()}
        self._revoked: set[str] = set()
        self._meetings: dict[str, list[_Meeting]] = {}  # sorted newest first
        self._by_id: dict[str, _Meeting] = {}
        self._by_participant: dict[str, tuple[_Meeting, int]] = {}
        self._cache: OrderedDict[tuple[str, int], _Records] = OrderedDict()
        self._metric_cache: OrderedDict[tuple[str, int], _MetricSamples] = OrderedDict()
        self._live: dict[tuple[str, int], _LiveRecords | _ChurnRecords] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._faults: list[_Fault] = []
        self._not_found: set[str] = set()
        self._retry_after_mode = "seconds" if config.retry_after else "none"
        self.closing = asyncio.Event()
        self.requests = {"meetings": 0, "logs": 0}
        self.request_log = RequestLog()
        self.status_counts: dict[str, int] = {}
        self.requests_per_domain: dict[str, int] = {}
        self.records_served = 0
        self.metrics_served = 0
        self.inflight = 0
        self.max_inflight = 0
        self.domain_stats: dict[str, _DomainStats] = {d: _DomainStats() for d in config.domains}
        # Separate streams, so that turning latency on does not change which requests fail.
        self._latency_rng = random.Random(f"{config.seed}:latency")
        self._error_rng = random.Random(f"{config.seed}:errors")
        for domain in config.domains:
            self._build_domain(domain)

    # -- clock -------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    # -- meeting headers ---------------------------------------------------------------

    def _participants(
        self, rng: random.Random, start: int, end: int | None, live: bool
    ) -> list[_Participant]:
        out: list[_Participant] = []
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
                _Participant(
                    participant_id=_uuid(rng),
                    user_id=_uuid(rng) if named else None,
                    user_name=rng.choice(_USER_NAMES) if named else None,
                    join_time=join,
                    leave_time=leave,
                    skew_ms=skew,
                    browser=rng.choice(_BROWSERS),
                    audio_track=_uuid(rng),
                    video_track=_uuid(rng),
                )
            )
        return out

    def _build_domain(self, domain: str) -> None:
        cfg = self.config
        base_ms = math.floor(self.base_time * 1000)
        window_ms = max(1000, math.floor((cfg.history - 30.0) * 1000))
        meetings: list[_Meeting] = []
        for index in range(cfg.meetings_per_domain):
            rng = random.Random(f"{cfg.seed}:{domain}:{index}:meta")
            mid = _uuid(rng)
            room = rng.choice(cfg.rooms)
            span = int(rng.uniform(0.15, 0.7) * window_ms)
            span = min(window_ms, max(span, 2 * cfg.records_per_meeting))
            first_ms = base_ms - window_ms - 30_000 + int(rng.uniform(0, window_ms - span))
            start = math.floor((first_ms - rng.uniform(0, 30_000)) / 1000)
            end = math.ceil((first_ms + span) / 1000) + rng.randint(0, 20)
            meetings.append(
                _Meeting(
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
                meeting = _Meeting(
                    domain=domain,
                    index=index,
                    id=_uuid(rng),
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
                self._live[(domain, index)] = (
                    _SilentRecords(records_rng, cfg, meeting, words_ms)
                    if words
                    else _LiveRecords(records_rng, cfg, meeting, silent)
                )
        first_churn = cfg.meetings_per_domain
        if cfg.live:
            first_churn += cfg.live_meetings + cfg.live_silent_meetings
        for j in range(cfg.churn_meetings):
            meetings.append(self._churn_meeting(domain, first_churn + j, j))
        for m in meetings:
            m.sort_key = (-m.start_time, m.id)
            self._by_id[m.id] = m
            for pi, p in enumerate(m.participants):
                self._by_participant[p.participant_id] = (m, pi)
        meetings.sort(key=lambda m: m.sort_key)
        self._meetings[domain] = meetings

    def _churn_meeting(self, domain: str, index: int, j: int) -> _Meeting:
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
        meeting = _Meeting(
            domain=domain,
            index=index,
            id=_uuid(rng),
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
        self._live[(domain, index)] = _ChurnRecords(records_rng, cfg, meeting, late)
        return meeting

    def domain_meetings(self, domain: str) -> list[_Meeting]:
        return self._meetings[domain]

    # -- records -----------------------------------------------------------------------

    def _records(self, meeting: _Meeting, now_ms: int) -> _Records:
        key = (meeting.domain, meeting.index)
        if meeting.live:
            live = self._live[key]
            live.extend_to(now_ms, [p.skew_ms for p in meeting.participants])
            return live
        recs = self._cache.get(key)
        if recs is None:
            recs = _generate_history(meeting, self.config)
            self._cache[key] = recs
            if len(self._cache) > self.config.cache_meetings:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return recs

    def _metrics(self, meeting: _Meeting, now_ms: int) -> _MetricSamples:
        interval_ms = max(1, round(self.config.metrics_interval * 1000))
        if meeting.live:
            # Live samples depend on the clock only through their cut-off, so recomputing
            # them is deterministic; they are few (one per participant per interval).
            return _metric_samples(meeting, now_ms, interval_ms)
        key = (meeting.domain, meeting.index)
        samples = self._metric_cache.get(key)
        if samples is None:
            samples = _metric_samples(meeting, _M64, interval_ms)
            self._metric_cache[key] = samples
            if len(self._metric_cache) > self.config.cache_meetings:
                self._metric_cache.popitem(last=False)
        else:
            self._metric_cache.move_to_end(key)
        return samples

    def _window(
        self, t: Sequence[int], start: int | None, end: int | None, now_ms: int
    ) -> tuple[int, int]:
        cfg = self.config
        lo = 0
        if start is not None:
            lo = (bisect.bisect_left if cfg.start_time_inclusive else bisect.bisect_right)(t, start)
        hi = bisect.bisect_right(t, now_ms)
        if end is not None:
            cut = (bisect.bisect_right if cfg.end_time_inclusive else bisect.bisect_left)(t, end)
            hi = min(hi, cut)
        return lo, max(lo, hi)

    def select_logs(
        self,
        meeting: _Meeting,
        now_ms: int,
        start: int | None = None,
        end: int | None = None,
        participant: int | None = None,
        level: int | None = None,
    ) -> tuple[_Records, list[int]]:
        """Indices of the visible records in the window, ASC."""
        recs = self._records(meeting, now_ms)
        t = recs.t
        lo, hi = self._window(t, start, end, now_ms)
        late = recs.late
        if late is not None:
            # Only records younger than the delay can still be invisible.
            delay_ms = math.floor(self.config.late_delay * 1000)
            cut = max(lo, min(hi, bisect.bisect_right(t, now_ms - delay_ms)))
            idx = list(range(lo, cut))
            idx.extend(i for i in range(cut, hi) if not late[i])
        else:
            idx = list(range(lo, hi))
        vis = recs.vis
        if vis is not None:
            idx = [i for i in idx if vis[i] <= now_ms]
        if participant is not None:
            part = recs.part
            idx = [i for i in idx if part[i] == participant]
        if level is not None:
            msg = recs.msg
            levels = _LEVEL_OF_MESSAGE
            idx = [i for i in idx if levels[msg[i]] == level]
        return recs, idx

    def select_metrics(
        self,
        meeting: _Meeting,
        now_ms: int,
        start: int | None = None,
        end: int | None = None,
        participant: int | None = None,
    ) -> tuple[_MetricSamples, list[int]]:
        samples = self._metrics(meeting, now_ms)
        lo, hi = self._window(samples.t, start, end, now_ms)
        idx = list(range(lo, hi))
        if participant is not None:
            part = samples.part
            idx = [i for i in idx if part[i] == participant]
        return samples, idx

    def _page(
        self, t: Sequence[int], idx: list[int], desc: bool, offset: int, limit: int
    ) -> list[int]:
        if not desc:
            return idx[offset : offset + limit]
        if self.config.desc_ties_reversed:
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

    def render_log(self, meeting: _Meeting, recs: _Records, i: int) -> dict[str, Any]:
        text, level, code, _ = _MESSAGES[recs.msg[i]]
        peer = recs.peer[i]
        t = recs.t[i]
        return {
            "time": _iso_ms(t),
            "clientTime": _iso_ms(t + recs.off[i]),
            "message": text,
            "mtgSessionId": meeting.id,
            "userSessionId": meeting.participants[recs.part[i]].participant_id,
            "peerId": meeting.participants[peer].participant_id if peer >= 0 else None,
            "domainName": meeting.domain,
            "level": level,
            "code": code,
        }

    def render_metric(self, meeting: _Meeting, samples: _MetricSamples, i: int) -> dict[str, Any]:
        pi = samples.part[i]
        p = meeting.participants[pi]
        t = samples.t[i]
        h = _mix64(meeting.mix_seed ^ (pi << 40) ^ (samples.k[i] << 1) ^ 0x5A5A)

        def u(j: int) -> float:
            return _mix64(h + j) / _TWO64

        delay = int(u(0) * _UPLOAD_DELAY_MS)
        recv_avg = 200_000 + u(1) * 2_500_000
        sent_avg = 150_000 + u(2) * 1_500_000
        recv: dict[str, Any] = {"transport": {"rttAvg": round(0.02 + u(3) * 0.2, 4)}}
        for qi, q in enumerate(meeting.participants):
            if qi == pi:
                continue
            recv[f"inbound-cam-audio&{q.audio_track}"] = {
                "jitterAvg": round(u(10 + qi) * 0.03, 5),
                "packetsLostPct": round(u(40 + qi) * 2.0, 3),
                "bitsReceivedPerSecAvg": round(24_000 + u(70 + qi) * 40_000, 1),
            }
            recv[f"inbound-cam-video&{q.video_track}"] = {
                "jitterAvg": round(u(100 + qi) * 0.05, 5),
                "packetsLostPct": round(u(130 + qi) * 3.0, 3),
                "bitsReceivedPerSecAvg": round(150_000 + u(160 + qi) * 1_200_000, 1),
                "framesPerSecondAvg": round(15 + u(190 + qi) * 15, 2),
            }
        return {
            "time": _iso_ms(t),
            "clientTime": _iso_ms(t - delay + p.skew_ms),
            "mtgSessionId": meeting.id,
            "userSessionId": p.participant_id,
            "roomName": meeting.room,
            "domainName": meeting.domain,
            "videoRecvPacketLoss": round(u(4) * 0.05, 5),
            "userRecvBitsPerSecAvg": round(recv_avg, 1),
            "userRecvBitsPerSecMax": round(recv_avg * (1 + u(5)), 1),
            "userRecvBitsPerSecMin": round(recv_avg * u(6), 1),
            "userSentBitsPerSecAvg": round(sent_avg, 1),
            "userSentBitsPerSecMax": round(sent_avg * (1 + u(7)), 1),
            "userSentBitsPerSecMin": round(sent_avg * u(8), 1),
            "futureFieldScore": round(u(9) * 100, 2),
            "browserName": p.browser,
            "metrics": {
                "sfu-recv": recv,
                "sfu-send": {
                    "transport": {"rttAvg": round(0.02 + u(220) * 0.2, 4)},
                    f"outbound-cam-video&{p.video_track}": {
                        "bitsSentPerSecAvg": round(sent_avg * 0.9, 1)
                    },
                    f"outbound-cam-audio&{p.audio_track}": {
                        "bitsSentPerSecAvg": round(sent_avg * 0.1, 1)
                    },
                },
            },
        }

    def ground_truth(
        self,
        domain: str,
        session: str | None = None,
        kind: str = "logs",
        offset: int = 0,
        limit: int | None = None,
        with_visible: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every record visible now, ASC, rendered as ``/v1/logs`` renders it.

        ``session`` is a meeting id or a participant id; without it, the whole domain,
        ordered by time, then meeting index, then generation order. ``with_visible`` adds
        ``_visible``: when the record became visible (Unix s, ms resolution).
        """
        now_ms = math.floor(self.now() * 1000)
        targets: list[tuple[_Meeting, int | None]]
        if session is None:
            targets = [(m, None) for m in sorted(self._meetings[domain], key=lambda m: m.index)]
        else:
            found = self._resolve(domain, session, None) or self._resolve(domain, None, session)
            targets = [] if found is None else [found]
        streams: list[Iterator[tuple[int, int, int, _Meeting, Any]]] = []
        for meeting, participant in targets:
            if kind == "metrics":
                samples, idx = self.select_metrics(meeting, now_ms, participant=participant)
                streams.append(self._tagged(meeting, samples, samples.t, idx))
            else:
                recs, idx = self.select_logs(meeting, now_ms, participant=participant)
                streams.append(self._tagged(meeting, recs, recs.t, idx))
        merged: Iterable[tuple[int, int, int, _Meeting, Any]] = (
            streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: r[:3])
        )
        stop = None if limit is None else offset + limit
        for _, _, i, meeting, store in itertools.islice(merged, offset, stop):
            if kind == "metrics":
                out = self.render_metric(meeting, store, i)
                if with_visible:
                    out["_visible"] = store.t[i] / 1000
            else:
                out = self.render_log(meeting, store, i)
                if with_visible:
                    out["_visible"] = self.visible_ms(store, i) / 1000
            yield out

    def visible_ms(self, recs: _Records, i: int) -> int:
        """When record ``i`` became (or becomes) visible at ``/v1/logs``, ms since the epoch."""
        if recs.vis is not None:
            return int(recs.vis[i])
        t = int(recs.t[i])
        if recs.late is not None and recs.late[i]:
            return t + math.floor(self.config.late_delay * 1000)
        return t

    @staticmethod
    def _tagged(
        meeting: _Meeting, store: Any, t: Sequence[int], idx: list[int]
    ) -> Iterator[tuple[int, int, int, _Meeting, Any]]:
        for i in idx:
            yield t[i], meeting.index, i, meeting, store

    def _resolve(
        self, domain: str, mtg: str | None, user: str | None
    ) -> tuple[_Meeting, int | None] | None:
        """The meeting and participant a /logs query names, None when it names nothing."""
        meeting: _Meeting | None = None
        participant: int | None = None
        if mtg is not None:
            meeting = self._by_id.get(mtg)
            if meeting is None:
                return None
        if user is not None:
            hit = self._by_participant.get(user)
            if hit is None or (meeting is not None and hit[0] is not meeting):
                return None
            meeting, participant = hit
        if meeting is None or meeting.domain != domain:
            return None
        return meeting, participant

    # -- request plumbing --------------------------------------------------------------

    def _retry_after_headers(self) -> dict[str, str]:
        if self._retry_after_mode == "none":
            return {}
        if self._retry_after_mode == "http-date":
            return {"Retry-After": formatdate(self.now() + 1, usegmt=True)}
        return {"Retry-After": "1"}

    def _take_fault(self, endpoint: str) -> _Fault | None:
        for n, fault in enumerate(self._faults):
            if fault.endpoint in ("any", endpoint):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[n]
                return fault
        return None

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization")
        if header is None:
            raise _ApiError(401, "authentication-error", "missing Authorization header")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise _ApiError(
                400, "authorization-header-error", "Authorization header must be 'Bearer <key>'"
            )
        domain = self._domain_by_key.get(token)
        if domain is None or domain in self._revoked:
            raise _ApiError(401, "authentication-error", "invalid or revoked API key")
        return domain

    def _rate_limit(self, domain: str, stats: _DomainStats) -> None:
        rate = self.config.rate_limit_per_second
        if rate is None:
            return
        burst = self.config.rate_burst if self.config.rate_burst is not None else rate
        now = self.now()
        bucket = self._buckets.get(domain)
        if bucket is None:
            bucket = self._buckets[domain] = _Bucket(tokens=burst, last=now)
        bucket.tokens = min(burst, bucket.tokens + max(0.0, now - bucket.last) * rate)
        bucket.last = now
        if bucket.tokens < 1.0:
            stats.limiter_429 += 1
            raise _ApiError(
                429,
                "rate-limit-error",
                "Too many requests, please slow down",
                self._retry_after_headers(),
            )
        bucket.tokens -= 1.0

    def _random_error(self, stats: _DomainStats) -> None:
        cfg = self.config
        if not (cfg.error_429_ratio or cfg.error_5xx_ratio):
            return
        rng = self._error_rng
        u = rng.random()
        if u < cfg.error_429_ratio:
            stats.random_429 += 1
            # Daily's own 429s do not always say when to come back: both must be handled.
            with_header = rng.random() < cfg.error_retry_after_ratio
            headers = self._retry_after_headers() if with_header else {}
            raise _ApiError(429, "rate-limit-error", "simulated rate limit", headers)
        if u < cfg.error_429_ratio + cfg.error_5xx_ratio:
            stats.random_5xx += 1
            status = (500, 502, 503, 504)[rng.randrange(4)]
            raise _ApiError(status, "server-error", "simulated server error")

    def _answer_delay(self) -> float:
        cfg = self.config
        if cfg.latency <= 0:
            return 0.0
        if cfg.latency_jitter <= 0:
            return cfg.latency
        return max(0.0, cfg.latency + self._latency_rng.uniform(-1.0, 1.0) * cfg.latency_jitter)

    def _domain_of(self, request: web.Request) -> str | None:
        # Counted on arrival, before authentication decides: a bad key still took a slot.
        _, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        return self._domain_by_key.get(token.strip())

    def api(
        self,
        endpoint: str,
        handler: Callable[[web.Request, str], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            self.requests[endpoint] += 1
            arrived = time.time()
            domain = self._domain_of(request)
            stats = self.domain_stats[domain] if domain is not None else None
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            if stats is not None:
                stats.arrive(self.now())
            try:
                response = await self._dispatch(endpoint, handler, request)
                delay = self._answer_delay()
                if delay > 0:
                    # A sleep, not a blocking wait: other requests are served meanwhile.
                    await asyncio.sleep(delay)
            finally:
                self.inflight -= 1
                if stats is not None:
                    stats.inflight -= 1
            key = str(response.status)
            self.status_counts[key] = self.status_counts.get(key, 0) + 1
            self.request_log.record(endpoint, request, response.status, arrived, time.time())
            return response

        return wrapped

    async def _dispatch(
        self,
        endpoint: str,
        handler: Callable[[web.Request, str], Awaitable[web.Response]],
        request: web.Request,
    ) -> web.Response:
        try:
            fault = self._take_fault(endpoint)
            if fault is not None:
                if fault.kind == "status":
                    headers = self._retry_after_headers() if fault.status in (429, 503) else None
                    raise _ApiError(
                        fault.status, _error_type(fault.status), "simulated fault", headers
                    )
                if fault.kind == "invalid_json":
                    return web.Response(
                        text='{"logs": [{"time": "2026-', content_type="application/json"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), fault.hang_seconds)
            domain = self._authenticate(request)
            self.requests_per_domain[domain] = self.requests_per_domain.get(domain, 0) + 1
            stats = self.domain_stats[domain]
            self._rate_limit(domain, stats)
            self._random_error(stats)
            return await handler(request, domain)
        except _ApiError as exc:
            return exc.response()

    # -- API handlers ------------------------------------------------------------------

    async def handle_logs(self, request: web.Request, domain: str) -> web.Response:
        q = request.query
        mtg = q.get("mtgSessionId") or None
        user = q.get("userSessionId") or None
        if mtg is None and user is None:
            raise _ApiError(
                400, "invalid-request-error", "mtgSessionId or userSessionId is required"
            )
        for sid in (mtg, user):
            if sid is not None and sid in self._not_found:
                raise _ApiError(404, "not-found", f"session {sid} not found")
        order = q.get("order", "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise _ApiError(400, "invalid-request-error", "order must be ASC or DESC")
        level_name = q.get("logLevel")
        level: int | None = None
        if level_name:
            if level_name.upper() not in _LEVEL_BY_NAME:
                raise _ApiError(
                    400, "invalid-request-error", "logLevel must be ERROR, INFO or DEBUG"
                )
            level = _LEVEL_BY_NAME[level_name.upper()]
        now_ms = math.floor(self.now() * 1000)
        start = _opt_int_param(q, "startTime")
        end = _int_param(q, "endTime", now_ms)
        limit = _int_param(q, "limit", 20)
        offset = _int_param(q, "offset", 0)
        if limit < 0 or offset < 0:
            raise _ApiError(400, "invalid-request-error", "limit and offset must be >= 0")
        limit = min(limit, self.config.max_limit)
        include_logs = _bool_param(q, "includeLogs", True)
        include_metrics = _bool_param(q, "includeMetrics", False)
        desc = order == "DESC"
        found = self._resolve(domain, mtg, user)
        body: dict[str, Any] = {}
        request_key = f"{mtg}:{user}:{order}:{start}:{end}:{level}:{offset}:{limit}"
        if include_logs:
            logs: list[dict[str, Any]] = []
            if found is not None:
                meeting, participant = found
                recs, idx = self.select_logs(meeting, now_ms, start, end, participant, level)
                n = self._page_size(f"logs:{request_key}", len(idx) - offset, limit)
                page = self._page(recs.t, idx, desc, offset, n)
                logs = [self.render_log(meeting, recs, i) for i in page]
            self.records_served += len(logs)
            body["logs"] = logs
        if include_metrics:
            metrics: list[dict[str, Any]] = []
            if found is not None and self.config.include_metrics_samples:
                meeting, participant = found
                samples, sidx = self.select_metrics(meeting, now_ms, start, end, participant)
                n = self._page_size(f"metrics:{request_key}", len(sidx) - offset, limit)
                page = self._page(samples.t, sidx, desc, offset, n)
                metrics = [self.render_metric(meeting, samples, i) for i in page]
            self.metrics_served += len(metrics)
            body["metrics"] = metrics
        return web.Response(text=json.dumps(body), content_type="application/json")

    def _page_size(self, request_key: str, remaining: int, limit: int) -> int:
        n = max(0, min(limit, remaining))
        if self.config.short_pages and n > 1:
            # Seeded by the request itself: a retry of the same request gets the same page.
            rng = random.Random(f"{self.config.seed}:short:{request_key}")
            if rng.random() < 0.5:
                n = rng.randint(1, n - 1)
        return n

    async def handle_meetings(self, request: web.Request, domain: str) -> web.Response:
        q = request.query
        now = self.now()
        room = q.get("room") or None
        tf_start = _num_param(q, "timeframe_start")
        tf_end = _num_param(q, "timeframe_end")
        limit = _int_param(q, "limit", 100)
        if limit < 0:
            raise _ApiError(400, "invalid-request-error", "limit must be >= 0")
        limit = min(limit, self.config.meetings_max_limit)
        ongoing = _bool_param(q, "ongoing", None)
        no_participants = _bool_param(q, "no_participants", False)
        after = q.get("starting_after") or None
        before = q.get("ending_before") or None
        cursor: tuple[int, str] | None = None
        for cursor_id in (after, before):
            if cursor_id is not None:
                m = self._by_id.get(cursor_id)
                if m is None or m.domain != domain:
                    raise _ApiError(400, "invalid-request-error", f"no meeting {cursor_id}")
                cursor = m.sort_key
                break
        matching = [
            m
            for m in self._meetings[domain]
            if m.begins <= now
            and (room is None or m.room == room)
            and (tf_start is None or m.start_time >= tf_start)
            and (tf_end is None or m.start_time < tf_end)
            and (ongoing is None or m.ongoing(now) == ongoing)
        ]
        if after is not None and cursor is not None:
            page = [m for m in matching if m.sort_key > cursor][:limit]
        elif cursor is not None:
            older = [m for m in matching if m.sort_key < cursor]
            page = older[max(0, len(older) - limit) :] if limit else []
        else:
            page = matching[:limit]
        data = [self._meeting_json(m, now, not no_participants) for m in page]
        body = {"total_count": len(matching), "data": data}
        return web.Response(text=json.dumps(body), content_type="application/json")

    def _meeting_json(self, m: _Meeting, now: float, with_participants: bool) -> dict[str, Any]:
        is_ongoing = m.ongoing(now)
        end = int(now) if is_ongoing or m.end_time is None else m.end_time
        out: dict[str, Any] = {
            "id": m.id,
            "room": m.room,
            "start_time": m.start_time,
            "duration": max(0, end - m.start_time),
            "ongoing": is_ongoing,
            "max_participants": len(m.participants),
        }
        if with_participants:
            parts = []
            for p in m.participants:
                if p.join_time > now:
                    continue
                leave = p.leave_time if p.leave_time is not None else int(now)
                parts.append(
                    {
                        "user_id": p.user_id,
                        "participant_id": p.participant_id,
                        "user_name": p.user_name,
                        "join_time": p.join_time,
                        "duration": max(0, min(leave, int(now)) - p.join_time),
                    }
                )
            out["participants"] = parts
        return out

    # -- control handlers --------------------------------------------------------------

    def _control_domain(self, request: web.Request) -> str:
        domain = request.query.get("domain") or next(iter(self.config.domains))
        if domain not in self._meetings:
            raise web.HTTPNotFound(text=json.dumps({"error": f"unknown domain {domain}"}))
        return domain

    async def handle_request_log(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since must be an integer") from None
        return web.json_response(self.request_log.since(since))

    async def handle_stats(self, request: web.Request) -> web.Response:
        with_arrivals = request.query.get("arrivals", "") in ("1", "true")
        return web.json_response(
            {
                "requests": dict(self.requests),
                "status_counts": dict(self.status_counts),
                "requests_per_domain": dict(self.requests_per_domain),
                "records_served": self.records_served,
                "metrics_served": self.metrics_served,
                "inflight": self.inflight,
                "max_inflight": self.max_inflight,
                "domains": {d: st.as_json(with_arrivals) for d, st in self.domain_stats.items()},
            }
        )

    async def handle_records(self, request: web.Request) -> web.StreamResponse:
        domain = self._control_domain(request)
        kind = request.query.get("kind", "logs")
        if kind not in ("logs", "metrics"):
            raise web.HTTPBadRequest(text="kind must be logs or metrics")
        try:
            offset = int(request.query.get("offset", "0"))
            limit_raw = request.query.get("limit")
            limit = None if limit_raw is None else int(limit_raw)
        except ValueError as exc:
            raise web.HTTPBadRequest(text="offset and limit must be integers") from exc
        session = request.query.get("session") or None
        with_visible = request.query.get("visible", "") in ("1", "true")
        records = self.ground_truth(domain, session, kind, max(0, offset), limit, with_visible)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"records":[')
        count = 0
        while True:
            # Chunks keep memory flat for 100k+ records and let other requests in between.
            chunk = [json.dumps(r) for r in itertools.islice(records, 2000)]
            if not chunk:
                break
            await resp.write(("," if count else "").encode() + ",".join(chunk).encode())
            count += len(chunk)
        await resp.write(f'],"count":{count}}}'.encode())
        await resp.write_eof()
        return resp

    async def handle_meeting_list(self, request: web.Request) -> web.Response:
        domain = self._control_domain(request)
        now = self.now()
        now_ms = math.floor(now * 1000)
        out = []
        for m in sorted(self._meetings[domain], key=lambda m: m.index):
            _, idx = self.select_logs(m, now_ms)
            out.append(
                {
                    "index": m.index,
                    "id": m.id,
                    "room": m.room,
                    "start_time": m.start_time,
                    "end_time": m.end_time,
                    "live": m.live,
                    "churn": m.churn,
                    "begins": m.begins,
                    "ends": m.ends,
                    "late_visible_at": (
                        None if m.late_visible_ms is None else m.late_visible_ms / 1000
                    ),
                    "ongoing": m.ongoing(now),
                    "participants": [p.participant_id for p in m.participants],
                    "visible_records": len(idx),
                }
            )
        return web.json_response({"meetings": out})

    async def handle_revoke(self, request: web.Request) -> web.Response:
        domain = self._control_domain(request)
        self._revoked.add(domain)
        return web.json_response({"revoked": sorted(self._revoked)})

    async def handle_restore(self, request: web.Request) -> web.Response:
        domain = self._control_domain(request)
        self._revoked.discard(domain)
        return web.json_response({"revoked": sorted(self._revoked)})

    async def handle_clock(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                self.advance(float(request.query.get("advance", "0")))
            except ValueError as exc:
                raise web.HTTPBadRequest(text="advance must be a number") from exc
        return web.json_response({"now": self.now()})

    def _faults_json(self) -> dict[str, Any]:
        return {
            "queued": [f.as_json() for f in self._faults],
            "retry_after": self._retry_after_mode,
            "not_found_sessions": sorted(self._not_found),
        }

    async def handle_faults(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response(self._faults_json())
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text="body must be a JSON object") from exc
        try:
            self.apply_faults(body)
        except (ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return web.json_response(self._faults_json())

    def apply_faults(self, body: Any) -> None:
        """Apply one ``POST /_sim/faults`` body (see the module docstring)."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        known = {
            "status",
            "count",
            "hang_seconds",
            "invalid_json",
            "endpoint",
            "retry_after",
            "not_found_session",
            "clear",
        }
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        if body.get("clear"):
            self._faults.clear()
            self._not_found.clear()
            self._retry_after_mode = "seconds" if self.config.retry_after else "none"
        count = int(body.get("count", 1))
        endpoint = str(body.get("endpoint", "any"))
        if endpoint not in ("any", "logs", "meetings"):
            raise ValueError("endpoint must be any, logs or meetings")
        if "status" in body:
            status = int(body["status"])
            if not 400 <= status <= 599:
                raise ValueError("status must be a 4xx or 5xx code")
            self._faults.append(_Fault("status", count, endpoint, status=status))
        if "hang_seconds" in body:
            hang = float(body["hang_seconds"])
            self._faults.append(_Fault("hang", count, endpoint, hang_seconds=hang))
        if body.get("invalid_json"):
            self._faults.append(_Fault("invalid_json", count, endpoint))
        if "retry_after" in body:
            mode = str(body["retry_after"])
            if mode not in ("seconds", "http-date", "none"):
                raise ValueError("retry_after must be seconds, http-date or none")
            self._retry_after_mode = mode
        if "not_found_session" in body:
            self._not_found.add(str(body["not_found_session"]))


SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig, *, clock: Clock | None = None) -> web.Application:
    """The simulator as an aiohttp app; ``clock`` (Unix seconds) defaults to ``time.time``."""
    sim = Simulator(config, clock)
    app = web.Application()
    app[SIM_KEY] = sim

    async def on_shutdown(_: web.Application) -> None:
        sim.closing.set()

    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/v1/logs", sim.api("logs", sim.handle_logs))
    app.router.add_get("/v1/meetings", sim.api("meetings", sim.handle_meetings))
    app.router.add_get("/_sim/stats", sim.handle_stats)
    app.router.add_get("/_sim/requests", sim.handle_request_log)
    app.router.add_get("/_sim/records", sim.handle_records)
    app.router.add_get("/_sim/meetings", sim.handle_meeting_list)
    app.router.add_post("/_sim/revoke", sim.handle_revoke)
    app.router.add_post("/_sim/restore", sim.handle_restore)
    app.router.add_get("/_sim/clock", sim.handle_clock)
    app.router.add_post("/_sim/clock", sim.handle_clock)
    app.router.add_get("/_sim/faults", sim.handle_faults)
    app.router.add_post("/_sim/faults", sim.handle_faults)
    return app


# --------------------------------------------------------------------------------------
# Running it


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class RunningSimulator:
    """A simulator serving on a local port inside the current event loop."""

    def __init__(self, runner: web.AppRunner, app: web.Application, host: str, port: int):
        self._runner = runner
        self.app = app
        self.host = host
        self.port = port
        self.url = _base_url(host, port)
        self.control_url = self.url[: -len("/v1")] + "/_sim"

    @property
    def simulator(self) -> Simulator:
        return self.app[SIM_KEY]

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_simulator(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
) -> RunningSimulator:
    """Serve ``create_app(config)`` on ``host:port`` (0 picks a free port)."""
    app = create_app(config, clock=clock)
    # A short shutdown timeout: hanging-fault requests must not hold up a test's teardown.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:
        # With port 0 the OS picked the port; the runner knows which.
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
            break
    return RunningSimulator(runner, app, host, bound)


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for synchronous tests."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self._host = host
        self._port = port
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: RunningSimulator | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._running = loop.run_until_complete(
                start_simulator(self.config, self._host, self._port, clock=self._clock)
            )
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._running.close())
            loop.close()

    def start(self, timeout: float = 30.0) -> SimulatorThread:
        self._thread = threading.Thread(target=self._run, name="daily-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    @property
    def running(self) -> RunningSimulator:
        if self._running is None:
            raise RuntimeError("simulator is not running")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def simulator(self) -> Simulator:
        return self.running.simulator

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _domain_arg(value: str) -> tuple[str, str]:
    name, sep, key = value.partition("=")
    if not sep or not name or not key:
        raise argparse.ArgumentTypeError("expected NAME=KEY")
    return name, key


def _duration_arg(value: str) -> float:
    # The daemon's own duration syntax, so a bench passes the same strings to both.
    from daily_otel_bridge.config.settings import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog or "python -m daily_otel_bridge.testing.simulator",
        description="Serve a deterministic imitation of Daily's /v1/meetings and /v1/logs.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--domain",
        type=_domain_arg,
        action="append",
        metavar="NAME=KEY",
        help="a domain and its API key (repeatable; default demo=demo-key)",
    )
    p.add_argument("--meetings", type=int, default=5, help="meetings per domain")
    p.add_argument("--records", type=int, default=200, help="records per meeting")
    p.add_argument("--participants", type=int, default=3, help="participants per meeting")
    p.add_argument("--tie-ratio", type=float, default=0.3)
    p.add_argument("--duplicate-ratio", type=float, default=0.0)
    p.add_argument("--late-ratio", type=float, default=0.0)
    p.add_argument("--late-delay", type=float, default=0.0, help="seconds")
    p.add_argument("--base-time", type=float, default=None, help="Unix seconds (default: now)")
    p.add_argument("--history", type=float, default=1800.0, help="seconds of past meetings")
    p.add_argument("--live", action="store_true", help="add ongoing meetings")
    p.add_argument("--live-meetings", type=int, default=1)
    p.add_argument("--live-rate", type=float, default=5.0, help="records/s per live meeting")
    p.add_argument("--live-duration", type=float, default=None, help="seconds")
    p.add_argument(
        "--live-silent-meetings", type=int, default=0, help="ongoing meetings without records"
    )
    add_churn_arguments(p)
    p.add_argument("--no-metrics", action="store_true", help="includeMetrics gives []")
    p.add_argument("--rate-limit", type=float, default=None, help="requests/s per domain")
    p.add_argument("--rate-burst", type=float, default=None)
    p.add_argument("--no-retry-after", action="store_true")
    p.add_argument("--max-limit", type=int, default=1000, help="largest page of /logs")
    p.add_argument(
        "--latency", type=_duration_arg, default=0.0, help="answer delay, e.g. 150ms (default 0)"
    )
    p.add_argument(
        "--latency-jitter", type=_duration_arg, default=0.0, help="+- uniform, e.g. 30ms"
    )
    p.add_argument("--error-429-ratio", type=float, default=0.0, help="share answering 429")
    p.add_argument("--error-5xx-ratio", type=float, default=0.0, help="share answering 5xx")
    p.add_argument(
        "--error-retry-after-ratio",
        type=float,
        default=0.5,
        help="share of the random 429s with Retry-After",
    )
    p.add_argument("--short-pages", action="store_true")
    p.add_argument("--start-exclusive", action="store_true", help="startTime is exclusive")
    p.add_argument("--end-exclusive", action="store_true", help="endTime is exclusive")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    return p


def add_churn_arguments(p: argparse.ArgumentParser) -> None:
    """``--live-silent-words*`` and ``--churn-*`` (shared with the bench's simulator server)."""
    p.add_argument(
        "--live-silent-words",
        type=int,
        default=0,
        help="records each silent meeting logged before the start (default 0)",
    )
    p.add_argument(
        "--live-silent-words-ago",
        type=float,
        default=30.0,
        help="seconds before the start those records were logged (default 30)",
    )
    p.add_argument("--churn-meetings", type=int, default=0, help="meetings starting during the run")
    p.add_argument(
        "--churn-over", type=float, default=150.0, help="seconds their starts spread over"
    )
    p.add_argument(
        "--churn-delay", type=float, default=0.0, help="seconds before the first one starts"
    )
    p.add_argument("--churn-min-duration", type=float, default=15.0, help="seconds")
    p.add_argument("--churn-max-duration", type=float, default=60.0, help="seconds")
    p.add_argument("--churn-rate", type=float, default=2.0, help="records/s while ongoing")
    p.add_argument(
        "--churn-late-ratio", type=float, default=0.2, help="share uploading a late batch"
    )
    p.add_argument("--churn-late-records", type=int, default=20, help="records in that batch")
    p.add_argument(
        "--churn-late-delay", type=float, default=10.0, help="seconds after the end it appears"
    )


def churn_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The churn keys of ``SimulatorConfig`` from the ``--churn-*`` flags (shared with the
    bench's simulator server)."""
    return {
        "live_silent_words": args.live_silent_words,
        "live_silent_words_ago": args.live_silent_words_ago,
        "churn_meetings": args.churn_meetings,
        "churn_over": args.churn_over,
        "churn_delay": args.churn_delay,
        "churn_min_duration": args.churn_min_duration,
        "churn_max_duration": args.churn_max_duration,
        "churn_rate": args.churn_rate,
        "churn_late_ratio": args.churn_late_ratio,
        "churn_late_records": args.churn_late_records,
        "churn_late_delay": args.churn_late_delay,
    }


def _config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    domains = dict(args.domain) if args.domain else {"demo": "demo-key"}
    return SimulatorConfig(
        seed=args.seed,
        domains=domains,
        meetings_per_domain=args.meetings,
        records_per_meeting=args.records,
        participants_per_meeting=args.participants,
        tie_ratio=args.tie_ratio,
        duplicate_ratio=args.duplicate_ratio,
        late_ratio=args.late_ratio,
        late_delay=args.late_delay,
        base_time=args.base_time,
        history=args.history,
        live=args.live,
        live_meetings=args.live_meetings,
        live_records_per_second=args.live_rate,
        live_duration=args.live_duration,
        live_silent_meetings=args.live_silent_meetings,
        **churn_kwargs(args),
        include_metrics_samples=not args.no_metrics,
        rate_limit_per_second=args.rate_limit,
        rate_burst=args.rate_burst,
        retry_after=not args.no_retry_after,
        max_limit=args.max_limit,
        short_pages=args.short_pages,
        start_time_inclusive=not args.start_exclusive,
        end_time_inclusive=not args.end_exclusive,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        error_429_ratio=args.error_429_ratio,
        error_5xx_ratio=args.error_5xx_ratio,
        error_retry_after_ratio=args.error_retry_after_ratio,
    )


async def _serve(config: SimulatorConfig, host: str, port: int, max_seconds: float) -> int:
    running = await start_simulator(config, host, port)
    # The first stdout line is the contract scripts and tests read; the hint goes to stderr.
    print(f"listening on {running.url}", flush=True)
    for name, key in config.domains.items():
        print(
            f"domain {name}: set `api_url: {running.url}` and `api_key: {key}` in its config "
            f"section; stops after {max_seconds:g}s or on Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)
    finally:
        await running.close()
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The simulator's command line (also `daily-otel-bridge simulator ...`)."""
    args = _parser(prog).parse_args(argv)
    try:
        config = _config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(config, args.host, args.port, args.max_seconds))


if __name__ == "__main__":
    raise SystemExit(main())
