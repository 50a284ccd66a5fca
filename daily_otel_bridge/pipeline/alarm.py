"""Trouble said at once, and not over and over: one alarm per domain and kind of trouble.

The exporter and the Daily client retry quietly for up to a minute; an operator must not
wait that long to learn the backend is gone. They report every failed *attempt* here. The
alarm logs a warning on the first one (the cause, a hint), one line whenever the cause
changes or the trouble ends, and a reminder at most every `remind_every` seconds while it
lasts: never a line per retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from daily_otel_bridge.core.trouble import clip, daily_hint, export_hint

REMIND_EVERY = 60.0


class Alarm:
    def __init__(
        self,
        *,
        what: str,  # "export" | "daily"
        log: Any,
        on_change: Callable[[str | None, str | None], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        remind_every: float = REMIND_EVERY,
    ) -> None:
        self.what = what
        self.log = log
        # (error type, message) when trouble starts or changes; (None, None) when it ends.
        self.on_change = on_change
        self.monotonic = monotonic
        self.remind_every = remind_every
        self.error_type: str | None = None
        self.since: float | None = None
        self.attempts = 0
        self._last_line = 0.0

    @property
    def failing(self) -> bool:
        return self.error_type is not None

    def attempt_failed(self, error_type: str, message: str, retry_in: float | None) -> None:
        now = self.monotonic()
        self.attempts += 1
        text = clip(message, 300)
        hint = (export_hint if self.what == "export" else daily_hint)(message)
        fields: dict[str, Any] = {"error_type": error_type, "error": text}
        if retry_in is not None:
            fields["retry_in_s"] = round(retry_in, 1)
        if self.error_type is None:
            self.error_type, self.since = error_type, now
            self._last_line = now
            self.log.warning(f"{self.what} failing", hint=hint, **fields)
        elif error_type != self.error_type:
            self.error_type = error_type
            self._last_line = now
            self.log.warning(
                f"{self.what} still failing, for another reason",
                hint=hint,
                failing_for_s=round(now - (self.since or now), 1),
                **fields,
            )
        elif now - self._last_line >= self.remind_every:
            self._last_line = now
            self.log.warning(
                f"{self.what} still failing",
                failing_for_s=round(now - (self.since or now), 1),
                attempts=self.attempts,
                **fields,
            )
        else:
            return
        if self.on_change is not None:
            self.on_change(self.error_type, text)

    def succeeded(self) -> None:
        if self.error_type is None:
            return
        now = self.monotonic()
        self.log.info(
            f"{self.what} recovered",
            after_s=round(now - (self.since or now), 1),
            failed_attempts=self.attempts,
        )
        self.error_type, self.since, self.attempts = None, None, 0
        if self.on_change is not None:
            self.on_change(None, None)
