"""Daily call-quality samples (`GET /logs?includeMetrics=true`) -> OTLP gauges and log records.

Pure: no I/O, no clock. The observed time, the uid and the room are passed in.

Daily publishes no schema for a sample, so the mapping treats the shape as open:

* the fields this catalogue knows become named gauges (`CATALOGUE`, docs/metrics.md);
* every other finite number becomes a point of the generic gauge `daily.call.other`, with
  its JSON path in `daily.metric.path`, so a field Daily adds tomorrow is exported too;
* strings, booleans, nulls and non-finite numbers are skipped and counted, never fatal.

Only a sample without a parsable `time`, `mtgSessionId` or `userSessionId` is refused
(`MalformedRecord`): without them a point cannot be placed in time or attributed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource

from daily_otel_bridge.core.encoding import fill_any_value, stamp_scope
from daily_otel_bridge.core.mapping import (
    ATTR_CLIENT_TIME,
    ATTR_MTG_SESSION_ID,
    ATTR_ROOM,
    ATTR_UID,
    ATTR_USER_SESSION_ID,
    METRICS_EVENT_NAME,
    SEVERITY_NUMBERS,
    MalformedRecord,
    ValidRecord,
    parse_time_ns,
    required_str,
)
from daily_otel_bridge.core.records import DailyRecord

ATTR_CONNECTION: Final = "daily.connection"
ATTR_TRACK_DIRECTION: Final = "daily.track.direction"
ATTR_TRACK_SOURCE: Final = "daily.track.source"
ATTR_TRACK_KIND: Final = "daily.track.kind"
ATTR_TRACK_ID: Final = "daily.track.id"
ATTR_METRIC_PATH: Final = "daily.metric.path"

GENERIC_METRIC: Final = "daily.call.other"

# The nested per-connection object, and the group inside a connection that holds its
# transport-level statistics rather than one track's.
METRICS_KEY: Final = "metrics"
TRANSPORT_KEY: Final = "transport"

# Track keys read `<direction>-<source>-<kind>&<trackId>`. Only these directions mark a key
# as a track: a key that merely contains dashes (say `candidate-pair-x`) must not be read as
# one, and an unfamiliar direction (Daily might add `remote-inbound-...`, whose statistics
# mean something else) is safer under the generic gauge, with its key in the path.
TRACK_DIRECTIONS: Final = frozenset({"inbound", "outbound"})

# Fields that identify the sample; they become attributes or nothing, never data points.
IDENTITY_FIELDS: Final = frozenset(
    {"time", "clientTime", "mtgSessionId", "userSessionId", "roomName", "domainName"}
)

# Bounds on what one sample may produce, so a pathological sample (a huge or deeply nested
# object) costs bounded CPU and memory; what is cut off is counted in `truncated`. A real
# sample of a 50-person call has a few hundred numbers, nested four levels deep.
MAX_DEPTH: Final = 16
MAX_POINTS_PER_SAMPLE: Final = 4096

Level = Literal["sample", "transport", "track", "any"]

SESSION_ATTRIBUTES: Final = (ATTR_MTG_SESSION_ID, ATTR_USER_SESSION_ID, ATTR_ROOM)
TRANSPORT_ATTRIBUTES: Final = (*SESSION_ATTRIBUTES, ATTR_CONNECTION)
TRACK_ATTRIBUTES: Final = (
    *TRANSPORT_ATTRIBUTES,
    ATTR_TRACK_DIRECTION,
    ATTR_TRACK_SOURCE,
    ATTR_TRACK_KIND,
    ATTR_TRACK_ID,
)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One documented gauge: what it is called, its UCUM unit and where its values come from.

    `fields` are the keys read at `level`: top-level keys of the sample (`sample`), keys of
    a connection's `transport` object (`transport`) or keys of a track object (`track`).
    """

    name: str
    unit: str
    description: str
    level: Level
    fields: tuple[str, ...]

    @property
    def source(self) -> str:
        """Where the values come from, as docs/metrics.md spells it."""
        if self.level == "sample":
            prefix = ""
        elif self.level == "transport":
            prefix = "metrics.<connection>.transport."
        elif self.level == "track":
            prefix = "metrics.<connection>.<direction>-<source>-<kind>&<trackId>."
        else:
            return "any other numeric field"
        return ", ".join(prefix + field for field in self.fields)

    @property
    def attributes(self) -> tuple[str, ...]:
        if self.level == "sample":
            return SESSION_ATTRIBUTES
        if self.level == "transport":
            return TRANSPORT_ATTRIBUTES
        if self.level == "track":
            return TRACK_ATTRIBUTES
        # The generic gauge: the connection and track attributes too, when the value sits
        # inside a connection or a track.
        return (*TRACK_ATTRIBUTES, ATTR_METRIC_PATH)


# Min, avg and max are separate gauges rather than one gauge with a `stat` attribute: a sum
# or an average over all series of one metric should mean something (Prometheus naming
# practice), and dashboards then select a statistic by name. Daily documents no units, so
# these are inferences (docs/metrics.md says so): jitter and RTT in seconds, the unit of the
# WebRTC getStats() values they summarise (around 0.02, i.e. 20 ms); `videoRecvPacketLoss`
# a fraction (values stay below 0.1); `packetsLostPct` a percentage, as its name says.
CATALOGUE: Final[tuple[CatalogueEntry, ...]] = (
    CatalogueEntry(
        "daily.call.recv.bitrate.avg",
        "bit/s",
        "Average bitrate the participant received over the sampling interval.",
        "sample",
        ("userRecvBitsPerSecAvg",),
    ),
    CatalogueEntry(
        "daily.call.recv.bitrate.min",
        "bit/s",
        "Lowest bitrate the participant received over the sampling interval.",
        "sample",
        ("userRecvBitsPerSecMin",),
    ),
    CatalogueEntry(
        "daily.call.recv.bitrate.max",
        "bit/s",
        "Highest bitrate the participant received over the sampling interval.",
        "sample",
        ("userRecvBitsPerSecMax",),
    ),
    CatalogueEntry(
        "daily.call.send.bitrate.avg",
        "bit/s",
        "Average bitrate the participant sent over the sampling interval.",
        "sample",
        ("userSentBitsPerSecAvg",),
    ),
    CatalogueEntry(
        "daily.call.send.bitrate.min",
        "bit/s",
        "Lowest bitrate the participant sent over the sampling interval.",
        "sample",
        ("userSentBitsPerSecMin",),
    ),
    CatalogueEntry(
        "daily.call.send.bitrate.max",
        "bit/s",
        "Highest bitrate the participant sent over the sampling interval.",
        "sample",
        ("userSentBitsPerSecMax",),
    ),
    CatalogueEntry(
        "daily.call.video.recv.packet_loss",
        "1",
        "Fraction of the video packets the participant should have received that were lost.",
        "sample",
        ("videoRecvPacketLoss",),
    ),
    CatalogueEntry(
        "daily.call.transport.rtt.avg",
        "s",
        "Average round-trip time of the connection over the sampling interval.",
        "transport",
        ("rttAvg",),
    ),
    CatalogueEntry(
        "daily.call.track.jitter.avg",
        "s",
        "Average jitter of one track over the sampling interval.",
        "track",
        ("jitterAvg",),
    ),
    CatalogueEntry(
        "daily.call.track.packet_loss",
        "%",
        "Percentage of one track's packets lost over the sampling interval.",
        "track",
        ("packetsLostPct",),
    ),
    CatalogueEntry(
        "daily.call.track.bitrate.avg",
        "bit/s",
        "Average bitrate of one track (received for inbound, sent for outbound tracks).",
        "track",
        ("bitsReceivedPerSecAvg", "bitsSentPerSecAvg"),
    ),
    CatalogueEntry(
        "daily.call.track.frame_rate.avg",
        "{frame}/s",
        "Average frame rate of one video track over the sampling interval.",
        "track",
        ("framesPerSecondAvg",),
    ),
    CatalogueEntry(
        GENERIC_METRIC,
        "",  # unknown: the generic gauge mixes whatever Daily sends
        "A numeric field of the sample that the catalogue does not name; "
        "daily.metric.path says which.",
        "any",
        (),
    ),
)

CATALOGUE_BY_NAME: Final[Mapping[str, CatalogueEntry]] = {e.name: e for e in CATALOGUE}


def _fields_at(level: Level) -> dict[str, CatalogueEntry]:
    return {field: e for e in CATALOGUE if e.level == level for field in e.fields}


_SAMPLE_FIELDS: Final = _fields_at("sample")
_TRANSPORT_FIELDS: Final = _fields_at("transport")
_TRACK_FIELDS: Final = _fields_at("track")
_GENERIC: Final = CATALOGUE_BY_NAME[GENERIC_METRIC]


@dataclass(frozen=True, slots=True)
class Point:
    """One gauge data point.

    The value is always a float: JSON does not tell `3` from `3.0` (Daily's own example
    has integer bitrates where the simulator has decimals), and one number type per series
    keeps every backend happy. `attributes` may be shared between points of one sample:
    treat it as read-only.
    """

    name: str
    unit: str
    time_ns: int
    value: float
    attributes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SampleMapping:
    """The points of one sample, and what was skipped (for the bridge's own counters)."""

    points: list[Point]
    ignored_non_numeric: int  # strings, booleans, nulls, NaN/Infinity, numbers too large
    truncated: int = 0  # points past MAX_POINTS_PER_SAMPLE, subtrees past MAX_DEPTH


@dataclass(frozen=True, slots=True)
class TrackKey:
    """The parts of a track key `<direction>-<source>-<kind>&<trackId>`."""

    direction: str
    source: str
    kind: str
    track_id: str | None

    @property
    def name(self) -> str:
        """The key without its track id: what the generic gauge's path shows."""
        return f"{self.direction}-{self.source}-{self.kind}"


def parse_track_key(key: str) -> TrackKey | None:
    """`inbound-cam-audio&abc` -> (inbound, cam, audio, abc); None when `key` is no track.

    The source is everything between the direction and the kind, so a source with dashes
    of its own (a custom track's name) survives. The id is everything after the first `&`.
    """
    head, amp, track_id = key.partition("&")
    direction, _, rest = head.partition("-")
    source, _, kind = rest.rpartition("-")
    if direction not in TRACK_DIRECTIONS or not source or not kind:
        return None
    return TrackKey(direction, source, kind, track_id if amp and track_id else None)


def validate_sample(sample: object) -> ValidRecord:
    """Check the fields every point needs; raise MalformedRecord with the reason.

    Returns the same type as `mapping.validate`, so the cursor treats logs and samples
    alike. Use it alone when samples are exported only as log records.
    """
    if not isinstance(sample, dict):
        raise MalformedRecord(f"metrics sample is {type(sample).__name__}, expected an object")
    time_ns = parse_time_ns(sample.get("time"))
    mtg = required_str(sample, "mtgSessionId")
    required_str(sample, "userSessionId")
    return ValidRecord(time_ns=time_ns, mtg_session_id=mtg)


def _room(sample: Mapping[str, Any], room: str | None) -> str | None:
    # The sample names its own room; discovery's room is the fallback for samples without.
    own = sample.get("roomName")
    if isinstance(own, str) and own:
        return own
    return room or None


def _number(value: object) -> float | None:
    """A finite float, or None for what is not a number (bool is an int to Python only)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond 1.8e308: no gauge can hold it
        return None
    return number if math.isfinite(number) else None


class _Collector:
    """Accumulates one sample's points; keeps `map_sample` a straight read of the shape."""

    __slots__ = ("ignored", "points", "time_ns", "truncated")

    def __init__(self, time_ns: int) -> None:
        self.time_ns = time_ns
        self.points: list[Point] = []
        self.ignored = 0
        self.truncated = 0

    def add(self, entry: CatalogueEntry, value: float, attributes: Mapping[str, str]) -> None:
        if len(self.points) >= MAX_POINTS_PER_SAMPLE:
            self.truncated += 1
            return
        self.points.append(Point(entry.name, entry.unit, self.time_ns, value, attributes))

    def known(
        self,
        entry: CatalogueEntry | None,
        value: object,
        path: str,
        attributes: Mapping[str, str],
        depth: int,
    ) -> None:
        """A field that may be catalogued: its gauge when it holds a number, else generic."""
        if entry is not None:
            number = _number(value)
            if number is not None:
                self.add(entry, number, attributes)
                return
        self.walk(value, path, attributes, depth)

    def walk(self, value: object, path: str, attributes: Mapping[str, str], depth: int) -> None:
        """Every number under `value` -> the generic gauge, its JSON path as an attribute."""
        if depth > MAX_DEPTH:
            self.truncated += 1
            return
        if isinstance(value, dict):
            for key, child in value.items():
                self.walk(child, f"{path}.{key}", attributes, depth + 1)
            return
        if isinstance(value, list):
            for index, child in enumerate(value):
                self.walk(child, f"{path}[{index}]", attributes, depth + 1)
            return
        number = _number(value)
        if number is None:
            self.ignored += 1
            return
        self.add(_GENERIC, number, {**attributes, ATTR_METRIC_PATH: path})

    def connections(self, value: object, base: Mapping[str, str]) -> None:
        """The nested `metrics` object: `{<connection>: {transport: {...}, <track>: {...}}}`."""
        if not isinstance(value, dict):
            self.walk(value, METRICS_KEY, base, 1)
            return
        for connection, groups in value.items():
            connection = str(connection)
            path = f"{METRICS_KEY}.{connection}"
            attrs = {**base, ATTR_CONNECTION: connection}
            if not isinstance(groups, dict):
                self.walk(groups, path, attrs, 2)
                continue
            for key, group in groups.items():
                self.group(str(key), group, path, attrs)

    def group(self, key: str, group: object, path: str, conn: Mapping[str, str]) -> None:
        """One member of a connection: its transport statistics, a track, or unknown."""
        if key == TRANSPORT_KEY:
            self.fields(_TRANSPORT_FIELDS, group, f"{path}.{key}", conn)
            return
        track = parse_track_key(key)
        if track is None:
            self.walk(group, f"{path}.{key}", conn, 3)
            return
        attrs = {
            **conn,
            ATTR_TRACK_DIRECTION: track.direction,
            ATTR_TRACK_SOURCE: track.source,
            ATTR_TRACK_KIND: track.kind,
        }
        if track.track_id is not None:
            attrs[ATTR_TRACK_ID] = track.track_id
        # The id stays out of the path: the path must name a field, not a track, or every
        # new track would add a `daily.metric.path` value.
        self.fields(_TRACK_FIELDS, group, f"{path}.{track.name}", attrs)

    def fields(
        self,
        catalogued: Mapping[str, CatalogueEntry],
        group: object,
        path: str,
        attrs: Mapping[str, str],
    ) -> None:
        if not isinstance(group, dict):
            self.walk(group, path, attrs, 3)
            return
        for field, value in group.items():
            field = str(field)
            self.known(catalogued.get(field), value, f"{path}.{field}", attrs, 4)


def session_attributes(sample: Mapping[str, Any], room: str | None) -> dict[str, str]:
    """`daily.mtg_session_id`, `daily.user_session_id` and (when known) `daily.room`."""
    attrs = {
        ATTR_MTG_SESSION_ID: sample["mtgSessionId"],
        ATTR_USER_SESSION_ID: sample["userSessionId"],
    }
    resolved = _room(sample, room)
    if resolved is not None:
        attrs[ATTR_ROOM] = resolved
    return attrs


def map_sample(sample: DailyRecord, *, room: str | None) -> SampleMapping:
    """One Daily metrics sample -> its gauge points, all at the sample's `time`.

    `room` is the room discovery knows, used when the sample has no `roomName`. Raises
    MalformedRecord only for a sample without a usable `time`, `mtgSessionId` or
    `userSessionId`; anything else odd is skipped and counted.
    """
    valid = validate_sample(sample)
    base = session_attributes(sample, room)
    out = _Collector(valid.time_ns)
    for key, value in sample.items():
        if key in IDENTITY_FIELDS:
            continue
        if key == METRICS_KEY:
            out.connections(value, base)
        else:
            key = str(key)
            out.known(_SAMPLE_FIELDS.get(key), value, key, base, 1)
    return SampleMapping(out.points, out.ignored, out.truncated)


class MetricsBatch:
    """One metrics export request under construction: one ResourceMetrics for one domain.

    Each metric name appears once, as a gauge holding every data point of that name, so a
    request of many samples stays compact (the name, unit and description are sent once).
    """

    def __init__(self, resource: ProtoResource) -> None:
        self.request = ExportMetricsServiceRequest()
        resource_metrics = self.request.resource_metrics.add()
        resource_metrics.resource.CopyFrom(resource)
        scope_metrics = resource_metrics.scope_metrics.add()
        stamp_scope(scope_metrics.scope)
        self._metrics: Any = scope_metrics.metrics
        self._by_name: dict[str, Metric] = {}
        self.size = 0  # data points

    def _metric(self, name: str, unit: str) -> Metric:
        metric = self._by_name.get(name)
        if metric is None:
            metric = self._metrics.add()
            metric.name = name
            entry = CATALOGUE_BY_NAME.get(name)
            metric.unit = entry.unit if entry is not None else unit
            if entry is not None:
                metric.description = entry.description
            metric.gauge.SetInParent()  # a gauge even before its first point
            self._by_name[name] = metric
        return metric

    def add(self, mapping: SampleMapping) -> int:
        """Append every point of one sample; returns how many were added."""
        # Points of one sample share attribute dicts (every session-level point, every
        # point of one track). Encoding each dict once into a template data point and
        # copying it is twice as fast as writing the attributes point by point.
        templates: dict[tuple[int, int], NumberDataPoint] = {}
        for point in mapping.points:
            key = (id(point.attributes), point.time_ns)
            template = templates.get(key)
            if template is None:
                template = NumberDataPoint(time_unix_nano=point.time_ns)
                attributes = template.attributes
                for name, value in point.attributes.items():
                    attributes.add(key=name).value.string_value = value
                templates[key] = template
            data_point = self._metric(point.name, point.unit).gauge.data_points.add()
            data_point.CopyFrom(template)
            data_point.as_double = point.value
        self.size += len(mapping.points)
        return len(mapping.points)

    def metric_count(self) -> int:
        return len(self._by_name)


def fill_sample_log_record(
    target: LogRecord,
    sample: DailyRecord,
    *,
    time_ns: int,
    observed_ns: int,
    uid: str,
    room: str | None,
) -> None:
    """`metrics_as_logs`: one validated sample -> one log record, the sample as its body.

    Event name `daily.metrics`, severity INFO, the same session attributes as a log line,
    and the whole sample as a structured (kvlist) body. Never raises for a sample that
    `validate_sample` accepted.
    """
    target.time_unix_nano = time_ns
    target.observed_time_unix_nano = observed_ns
    target.severity_number = SEVERITY_NUMBERS["INFO"]  # type: ignore[assignment]
    target.severity_text = "INFO"
    target.event_name = METRICS_EVENT_NAME
    fill_any_value(target.body, sample)
    attributes = target.attributes
    attributes.add(key=ATTR_MTG_SESSION_ID).value.string_value = sample["mtgSessionId"]
    attributes.add(key=ATTR_USER_SESSION_ID).value.string_value = sample["userSessionId"]
    client_time = sample.get("clientTime")
    if isinstance(client_time, str):
        attributes.add(key=ATTR_CLIENT_TIME).value.string_value = client_time
    resolved = _room(sample, room)
    if resolved is not None:
        attributes.add(key=ATTR_ROOM).value.string_value = resolved
    attributes.add(key=ATTR_UID).value.string_value = uid
