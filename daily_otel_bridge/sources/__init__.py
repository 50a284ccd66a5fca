"""The sources of Daily records the bridge reads, one module each (see `base`).

`REGISTRY` is the one list the pipeline iterates over; a new source is a module declaring
a `Source` plus one `REGISTRY.register` line here.
"""

from daily_otel_bridge.sources import api_logs, logs, presence, samples, summaries, webhooks
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
# Issue 17: what discovery saw of ended meetings, who is present now, the REST API's logs.
REGISTRY.register(summaries.SOURCE)
REGISTRY.register(presence.SOURCE)
REGISTRY.register(api_logs.SOURCE)
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
