"""The sources of Daily records the bridge reads, one module each (see `base`).

`REGISTRY` is the one list the pipeline iterates over; a new source is a module declaring
a `Source` plus one `REGISTRY.register` line here.
"""

from daily_otel_bridge.sources import logs, samples, webhooks
from daily_otel_bridge.sources.base import (
    DomainSource,
    PageContext,
    PollContext,
    Poller,
    RecordContext,
    Registry,
    Source,
)

REGISTRY = Registry([logs.SOURCE, samples.SOURCE])
REGISTRY.register(webhooks.SOURCE)

__all__ = [
    "REGISTRY",
    "DomainSource",
    "PageContext",
    "PollContext",
    "Poller",
    "RecordContext",
    "Registry",
    "Source",
]
