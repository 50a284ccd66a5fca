"""`release_freed_memory` hands freed heap back to the operating system (glibc)."""

from __future__ import annotations

import platform

import pytest

from daily_otel_bridge.pipeline import memory


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1])


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc")
def test_the_memory_a_dropped_working_set_held_goes_back() -> None:
    assert memory._trim is not None, "glibc's malloc_trim was not found"
    # Records' texts as the pipeline holds them (above pymalloc's 512 bytes: glibc's heap),
    # with a survivor here and there, which keeps glibc from shrinking the heap by itself.
    held = [f"line {i} " * 200 for i in range(100_000)]
    survivors = held[::1000]
    before = rss_kb()
    del held
    memory.release_freed_memory()
    after = rss_kb()
    assert survivors
    assert after < before - 100_000, (before, after)
