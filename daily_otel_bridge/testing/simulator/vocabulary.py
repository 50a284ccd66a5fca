"""Static vocabulary and the pure helpers every other module draws on.

The messages, names and browsers records are drawn from, the splitmix64 mixer that makes
metric values a pure function of their coordinates, and Daily's time and id formats.
"""

from __future__ import annotations

import random
import time
import uuid
from functools import lru_cache

# (message, level, code, weight). Levels: 0=ERROR, 1=INFO, 2=DEBUG (inferred, see module
# docstring); the first three rows are the seed example's own.
MESSAGES: tuple[tuple[str, int, int | None, int], ...] = (
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
LEVEL_OF_MESSAGE: tuple[int, ...] = tuple(m[1] for m in MESSAGES)
LEVEL_BY_NAME: dict[str, int] = {"ERROR": 0, "INFO": 1, "DEBUG": 2}


def message_table(size: int = 1024) -> bytes:
    # A lookup table turns 10 random bits into a weighted message choice in O(1).
    total = sum(m[3] for m in MESSAGES)
    table = bytearray()
    for index, message in enumerate(MESSAGES):
        table.extend([index] * (message[3] * size // total))
    table.extend([len(MESSAGES) - 1] * (size - len(table)))
    return bytes(table[:size])


MSG_TABLE = message_table()
USER_NAMES = ("Ana", "Bo", "Chen", "Dmitri", "Eve", "Femi", "Grace", "Hiro", "Ines", "Jon")
BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")
M64 = (1 << 64) - 1
TWO64 = float(1 << 64)
METRIC_JITTER_MS = 1000
UPLOAD_DELAY_MS = 2500


def mix64(x: int) -> int:
    # splitmix64: metric values are a pure function of (meeting, participant, sample), so
    # they need no stored state and no per-sample Random object.
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


@lru_cache(maxsize=65536)
def iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(ms: int) -> str:
    second, milli = divmod(ms, 1000)
    return f"{iso_second(second)}.{milli:03d}000000Z"


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
