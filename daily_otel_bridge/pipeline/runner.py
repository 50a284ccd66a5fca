"""Per-domain supervision: run the pipeline, classify its failures, back off, start over.

Each domain runs in its own task with its own client, exporter and backoff, so a revoked key
or a dead backend of one domain never delays another. Only a state store that cannot be
written stops the process: shipping without a cursor would duplicate without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog

from daily_otel_bridge.core.retry import backoff_delay
from daily_otel_bridge.daily.client import AuthError, DailyApiError
from daily_otel_bridge.otlp.transport import ExportError
from daily_otel_bridge.pipeline.alarm import Alarm
from daily_otel_bridge.pipeline.domain import DomainPipeline, PassReport
from daily_otel_bridge.pipeline.memory import release_freed_memory
from daily_otel_bridge.state.base import LeaseLost, StateError

AUTH_RETRY_SECONDS = 300.0


@dataclass(slots=True)
class DomainStatus:
    """What health checks and `--once` report about a domain (no secret-bearing text)."""

    name: str
    state: str = "starting"  # starting | ok | degraded | failing | auth_failed | stopped
    last_success: float | None = None
    last_error_type: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    passes: int = 0
    totals: PassReport | None = None


def classify(exc: BaseException) -> tuple[str, str]:
    """(state, error type) of a domain failure."""
    if isinstance(exc, AuthError):
        return "auth_failed", "daily_auth"
    if isinstance(exc, DailyApiError):
        return "failing", "daily_api"
    if isinstance(exc, ExportError):
        return "failing", "export_transient" if exc.transient else "export_permanent"
    return "failing", type(exc).__name__


class DomainRunner:
    def __init__(self, pipeline: DomainPipeline, *, fatal_state_errors: bool = True) -> None:
        self.pipeline = pipeline
        # SQLite: a state error ends the process. PostgreSQL: the domain backs off; a lost
        # lease (`LeaseLost`) ends only this domain.
        self.fatal_state_errors = fatal_state_errors
        self._last_failure: tuple[str, str] | None = None
        self.status = DomainStatus(name=pipeline.name, totals=pipeline.totals)
        self.log = structlog.get_logger(__name__).bind(domain=pipeline.name)
        # Every commit (and a healthy discovery with nothing to read) marks the domain ok.
        pipeline.on_success = self._recovered
        # Failed attempts are said (and shown in /readyz) at once, not after the retries.
        self.alarms = {
            "export": Alarm(what="export", log=self.log, on_change=self._trouble),
            "daily": Alarm(what="daily", log=self.log, on_change=self._trouble),
        }
        pipeline.observe(daily=self.alarms["daily"], export=self.alarms["export"])

    def _trouble(self, error_type: str | None, message: str | None) -> None:
        """An alarm started, changed or ended: the status follows at once."""
        failing = [a for a in self.alarms.values() if a.failing]
        if not failing:
            return  # back to ok with the next commit (`_recovered`)
        alarm = failing[0]
        self.status.state = "auth_failed" if alarm.error_type == "daily_auth" else "failing"
        self.status.last_error_type = alarm.error_type
        if error_type is not None and message is not None:
            self.status.last_error = message

    def _failed(self, exc: BaseException) -> None:
        state, error_type = classify(exc)
        # Compared with the last *domain* failure logged, not with the status: the alarms
        # set the status at the first failed attempt already.
        changed = (state, error_type) != self._last_failure
        self._last_failure = (state, error_type)
        self.status.state = state
        self.status.last_error_type = error_type
        self.status.last_error = str(exc)
        self.status.consecutive_failures += 1
        if changed or self.status.consecutive_failures % 20 == 0:
            # One clear line per kind of trouble, not one per retry.
            if isinstance(exc, DailyApiError | ExportError):
                self.log.error("domain failed", error_type=error_type, error=str(exc))
            else:
                self.log.exception("domain failed", error_type=error_type, exc_info=exc)

    def _recovered(self) -> None:
        if any(a.failing for a in self.alarms.values()):
            return  # something still fails (e.g. discovery while reads go on)
        if self.status.state not in ("ok", "starting") and self.status.consecutive_failures:
            self.log.info("domain recovered", after_failures=self.status.consecutive_failures)
        self._last_failure = None
        self.status.state = "ok"
        self.status.last_error_type = None
        self.status.last_error = None
        self.status.consecutive_failures = 0
        self.status.last_success = self.pipeline.last_success or time.time()

    async def run_once(self) -> bool:
        """One pass with error handling (`run --once`); True when it fully succeeded."""
        try:
            stats = await self.pipeline.run_once()
        except (LeaseLost, asyncio.CancelledError):
            raise
        except StateError as exc:
            if self.fatal_state_errors:
                raise
            self._failed(exc)
            return False
        except Exception as exc:
            self._failed(exc)
            return False
        self.status.passes += 1
        if stats.session_failures:
            # Some sessions could not be read; the rest were. Not a success (readiness,
            # `--once`), but no reason to back the whole domain off either.
            self.status.state = "degraded"
            self.status.last_error_type = "daily_session"
            self.status.consecutive_failures += 1
            self.log.error(
                "pass incomplete: some sessions could not be read",
                failed_sessions=len(stats.session_failures),
                first=stats.session_failures[0][:300],
            )
            return False
        self._recovered()
        self.log.info(
            "pass done",
            sessions=stats.reads,
            exported=stats.exported,
            reread=stats.reread,
            malformed=stats.malformed,
            rejected=stats.rejected,
            requests=stats.requests,
            requests_per_read=round(stats.requests_per_read, 2),
        )
        return True

    def delay_after_failure(self) -> float:
        if self.status.state == "auth_failed":
            return AUTH_RETRY_SECONDS
        return backoff_delay(self.status.consecutive_failures, base=1.0, cap=60.0)

    async def run(self, stop: asyncio.Event) -> None:
        """The daemon: continuous reads until `stop`; after a failure, back off, start over."""
        while not stop.is_set():
            try:
                await self.pipeline.run(stop)
            except (LeaseLost, asyncio.CancelledError):
                raise
            except StateError as exc:
                if self.fatal_state_errors:
                    raise
                await self._back_off(exc, stop)
                continue
            except Exception as exc:
                await self._back_off(exc, stop)
                continue
            break
        self.status.state = "stopped"

    async def _back_off(self, exc: BaseException, stop: asyncio.Event) -> None:
        """After a failed attempt: say it, give back the memory of what the attempt
        dropped (its pages and batches), wait the backoff (or until told to stop)."""
        self._failed(exc)
        release_freed_memory()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=self.delay_after_failure())
