"""Which records a request sees: the per-meeting record stores (a bounded LRU of generated
history, the live stores of the world) and the selection of a time window, visible now."""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Sequence

from .config import SimulatorConfig
from .model import Meeting
from .records import MetricSamples, Records, generate_history, metric_samples
from .vocabulary import LEVEL_OF_MESSAGE, M64
from .world import World


class RecordStore:
    """Generates, caches and selects the records of the world's meetings."""

    def __init__(self, config: SimulatorConfig, world: World) -> None:
        self.config = config
        self._world = world
        self._cache: OrderedDict[tuple[str, int], Records] = OrderedDict()
        self._metric_cache: OrderedDict[tuple[str, int], MetricSamples] = OrderedDict()

    def records(self, meeting: Meeting, now_ms: int) -> Records:
        key = (meeting.domain, meeting.index)
        if meeting.live:
            live = self._world.live[key]
            live.extend_to(now_ms, [p.skew_ms for p in meeting.participants])
            return live
        recs = self._cache.get(key)
        if recs is None:
            recs = generate_history(meeting, self.config)
            self._cache[key] = recs
            if len(self._cache) > self.config.cache_meetings:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return recs

    def metrics(self, meeting: Meeting, now_ms: int) -> MetricSamples:
        interval_ms = max(1, round(self.config.metrics_interval * 1000))
        if meeting.live:
            # Live samples depend on the clock only through their cut-off, so recomputing
            # them is deterministic; they are few (one per participant per interval).
            return metric_samples(meeting, now_ms, interval_ms)
        key = (meeting.domain, meeting.index)
        samples = self._metric_cache.get(key)
        if samples is None:
            samples = metric_samples(meeting, M64, interval_ms)
            self._metric_cache[key] = samples
            if len(self._metric_cache) > self.config.cache_meetings:
                self._metric_cache.popitem(last=False)
        else:
            self._metric_cache.move_to_end(key)
        return samples

    def window(
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
        meeting: Meeting,
        now_ms: int,
        start: int | None = None,
        end: int | None = None,
        participant: int | None = None,
        level: int | None = None,
    ) -> tuple[Records, list[int]]:
        """Indices of the visible records in the window, ASC."""
        recs = self.records(meeting, now_ms)
        t = recs.t
        lo, hi = self.window(t, start, end, now_ms)
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
            levels = LEVEL_OF_MESSAGE
            idx = [i for i in idx if levels[msg[i]] == level]
        return recs, idx

    def select_metrics(
        self,
        meeting: Meeting,
        now_ms: int,
        start: int | None = None,
        end: int | None = None,
        participant: int | None = None,
    ) -> tuple[MetricSamples, list[int]]:
        samples = self.metrics(meeting, now_ms)
        lo, hi = self.window(samples.t, start, end, now_ms)
        idx = list(range(lo, hi))
        if participant is not None:
            part = samples.part
            idx = [i for i in idx if part[i] == participant]
        return samples, idx

    def visible_ms(self, recs: Records, i: int) -> int:
        """When record ``i`` became (or becomes) visible at ``/v1/logs``, ms since the epoch."""
        if recs.vis is not None:
            return int(recs.vis[i])
        t = int(recs.t[i])
        if recs.late is not None and recs.late[i]:
            return t + math.floor(self.config.late_delay * 1000)
        return t
