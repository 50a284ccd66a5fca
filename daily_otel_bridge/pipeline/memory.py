"""Give back to the operating system what a failed attempt dropped.

After a failure the domain's pipeline drops everything it held (pages, batches in flight)
and starts over from the committed cursors. glibc's allocator keeps the freed heap for later
instead of returning it, and a run of failures (a backend down for minutes) then ratchets
the resident size up by a working set per attempt: measured about 8 MB per failed attempt
with 30 sessions of backlog, 94 -> 137 MB over eight. `malloc_trim(0)` after the drop keeps
it flat (tests/faults/test_backend_outage.py). Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

_trim: Callable[[int], int] | None
try:
    _trim = ctypes.CDLL(None).malloc_trim
except (AttributeError, OSError):  # not glibc (musl, macOS)
    _trim = None


def release_freed_memory() -> None:
    gc.collect()  # cycles (tracebacks, tasks) hold pages too
    if _trim is not None:
        _trim(0)
