"""The one tally of a domain: what it read, exported and refused.

One `PassReport` per domain, handed to each part that counts (the loop and backfill count
reads, the record path dead letters, the batcher what the backend acknowledged) and updated
where each event happens. `run_once` reports the difference of two snapshots (`since`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(slots=True)
class PassReport:
    """What a domain did: over a `run_once` pass, or (`DomainPipeline.totals`) since start."""

    fetched: int = 0  # records read from Daily, re-reads included
    exported: int = 0  # records of every source whose export was acknowledged and committed
    reread: int = 0  # read again (the overlap, when the list changed there) and dropped
    malformed: int = 0  # kept as dead letters
    rejected: int = 0  # log records the backend refused for good (partial success)
    points_exported: int = 0  # metric data points acknowledged
    requests: int = 0  # Daily requests of session reads (discovery not counted)
    reads: int = 0  # successful session reads
    first_reads: int = 0  # sessions read for the first time
    session_errors: list[str] = field(default_factory=list)  # warnings (e.g. 404)
    session_failures: list[str] = field(default_factory=list)  # reads that failed

    def count_read(
        self, session_id: str, *, fetched: int, reread: int, requests: int, not_found: str | None
    ) -> None:
        """One successful read of one session."""
        self.reads += 1
        self.fetched += fetched
        self.reread += reread
        self.requests += requests
        if not_found is not None:
            self.session_errors.append(f"{session_id}: {not_found}")

    @property
    def requests_per_read(self) -> float:
        return self.requests / self.reads if self.reads else 0.0

    def copy(self) -> PassReport:
        return dataclasses.replace(
            self,
            session_errors=list(self.session_errors),
            session_failures=list(self.session_failures),
        )

    def since(self, before: PassReport) -> PassReport:
        """The difference of two cumulative reports."""
        out = PassReport()
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(before, f.name)
            setattr(out, f.name, mine[len(theirs) :] if isinstance(mine, list) else mine - theirs)
        return out
