"""Metrics samples -> OTLP gauges and `daily.metrics` log records, as tables.

The sample shape is undocumented, so besides the catalogue these tests pin down what
happens to everything else: unknown numbers become generic points, the rest is counted,
and no input raises anything but MalformedRecord.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge import __version__
from daily_otel_bridge.core.console import decode_any
from daily_otel_bridge.core.encoding import (
    MAX_BODY_DEPTH,
    any_value,
    fill_any_value,
)
from daily_otel_bridge.core.mapping import MalformedRecord, parse_time_ns
from daily_otel_bridge.core.metrics_mapping import (
    CATALOGUE,
    CATALOGUE_BY_NAME,
    GENERIC_METRIC,
    MAX_DEPTH,
    MAX_POINTS_PER_SAMPLE,
    MetricsBatch,
    Point,
    SampleMapping,
    TrackKey,
    fill_sample_log_record,
    map_sample,
    parse_track_key,
    validate_sample,
)
from daily_otel_bridge.otlp.resource import domain_resource
from daily_otel_bridge.testing.simulator import SIM_KEY, Simulator, SimulatorConfig, create_app

T = "2026-03-23T16:32:55.473000000Z"
T_NS = 1774283575 * 10**9 + 473_000_000
MTG = "008c1f0f-6fc5-4e5f-b872-1b9623cb1e7a"
USER = "7a51a4b2-92cf-4ad2-b53b-9d01cc985a38"
SESSION = {"daily.mtg_session_id": MTG, "daily.user_session_id": USER, "daily.room": "standup"}
BASE = 1_774_000_000.0

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def sample(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "time": T,
        "clientTime": "2026-03-23T16:32:54.338000000Z",
        "mtgSessionId": MTG,
        "userSessionId": USER,
        "roomName": "standup",
        "domainName": "acme",
    }
    out.update(fields)
    return out


def with_metrics(connection: str, key: str, group: Any) -> dict[str, Any]:
    return sample(metrics={connection: {key: group}})


def only_point(mapping: SampleMapping) -> Point:
    assert len(mapping.points) == 1, mapping.points
    return mapping.points[0]


def simulator_samples(n: int = 60, participants: int = 3) -> list[dict[str, Any]]:
    sim = Simulator(
        SimulatorConfig(
            base_time=BASE,
            domains={"acme": "key"},
            meetings_per_domain=2,
            participants_per_meeting=participants,
        )
    )
    return list(sim.ground_truth("acme", kind="metrics", limit=n))


# --- the catalogue ----------------------------------------------------------------------


def test_catalogue_is_consistent() -> None:
    names = [entry.name for entry in CATALOGUE]
    assert len(names) == len(set(names))
    assert all(name.startswith("daily.call.") for name in names)
    assert set(CATALOGUE_BY_NAME) == set(names)
    for level in ("sample", "transport", "track"):
        fields = [f for e in CATALOGUE if e.level == level for f in e.fields]
        assert len(fields) == len(set(fields)), level
    for entry in CATALOGUE:
        assert entry.unit in {"bit/s", "%", "1", "s", "{frame}/s", ""}
        assert entry.description.endswith(".")
        assert entry.source
        assert entry.attributes[:3] == tuple(SESSION)
    assert [e.name for e in CATALOGUE if e.level == "any"] == [GENERIC_METRIC]


@pytest.mark.parametrize(
    ("field", "value", "name", "unit"),
    [
        ("userRecvBitsPerSecAvg", 1038950, "daily.call.recv.bitrate.avg", "bit/s"),
        ("userRecvBitsPerSecMin", 702322.5, "daily.call.recv.bitrate.min", "bit/s"),
        ("userRecvBitsPerSecMax", 1248527, "daily.call.recv.bitrate.max", "bit/s"),
        ("userSentBitsPerSecAvg", 1059720, "daily.call.send.bitrate.avg", "bit/s"),
        ("userSentBitsPerSecMin", 0, "daily.call.send.bitrate.min", "bit/s"),
        ("userSentBitsPerSecMax", 1087262.25, "daily.call.send.bitrate.max", "bit/s"),
        ("videoRecvPacketLoss", 0.0125, "daily.call.video.recv.packet_loss", "1"),
    ],
)
def test_sample_fields(field: str, value: float, name: str, unit: str) -> None:
    mapping = map_sample(sample(**{field: value}), room=None)
    point = only_point(mapping)
    assert (point.name, point.unit, point.time_ns) == (name, unit, T_NS)
    assert point.value == value
    assert type(point.value) is float  # one number type per series, whatever JSON said
    assert dict(point.attributes) == SESSION
    assert mapping.ignored_non_numeric == 0


def test_transport_rtt() -> None:
    point = only_point(
        map_sample(with_metrics("sfu-send", "transport", {"rttAvg": 0.2}), room=None)
    )
    assert (point.name, point.unit, point.value) == ("daily.call.transport.rtt.avg", "s", 0.2)
    assert dict(point.attributes) == {**SESSION, "daily.connection": "sfu-send"}


TRACK_ATTRS = {
    **SESSION,
    "daily.connection": "sfu-recv",
    "daily.track.direction": "inbound",
    "daily.track.source": "cam",
    "daily.track.kind": "video",
    "daily.track.id": "abc",
}


@pytest.mark.parametrize(
    ("field", "value", "name", "unit"),
    [
        ("jitterAvg", 0.0275, "daily.call.track.jitter.avg", "s"),
        ("packetsLostPct", 1.5, "daily.call.track.packet_loss", "%"),
        ("bitsReceivedPerSecAvg", 962940.7, "daily.call.track.bitrate.avg", "bit/s"),
        ("bitsSentPerSecAvg", 774570, "daily.call.track.bitrate.avg", "bit/s"),
        ("framesPerSecondAvg", 29.6, "daily.call.track.frame_rate.avg", "{frame}/s"),
    ],
)
def test_track_fields(field: str, value: float, name: str, unit: str) -> None:
    mapping = map_sample(
        with_metrics("sfu-recv", "inbound-cam-video&abc", {field: value}), room=None
    )
    point = only_point(mapping)
    assert (point.name, point.unit, point.value) == (name, unit, value)
    assert dict(point.attributes) == TRACK_ATTRS


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("inbound-cam-audio&abc", TrackKey("inbound", "cam", "audio", "abc")),
        ("outbound-screen-video&x-1", TrackKey("outbound", "screen", "video", "x-1")),
        ("inbound-cam-audio", TrackKey("inbound", "cam", "audio", None)),  # no `&`
        ("inbound-cam-audio&", TrackKey("inbound", "cam", "audio", None)),  # empty id
        ("inbound-cam-audio&a&b", TrackKey("inbound", "cam", "audio", "a&b")),
        # extra dashes: the source is everything between the direction and the kind
        ("inbound-custom-my-mic-audio&t", TrackKey("inbound", "custom-my-mic", "audio", "t")),
        ("inbound-cam-audio-extra&t", TrackKey("inbound", "cam-audio", "extra", "t")),
        # the `&` splits first: dashes in the id do not move the kind
        ("outbound-cam-video&9f-2c-7", TrackKey("outbound", "cam", "video", "9f-2c-7")),
        # not tracks: unknown direction, too few parts, empty parts, other members
        ("sideways-cam-audio&t", None),
        ("remote-inbound-cam-audio&t", None),
        ("Inbound-cam-audio&t", None),
        ("inbound-audio&t", None),
        ("inbound&t", None),
        ("inbound--audio&t", None),
        ("inbound-cam-&t", None),
        ("-cam-audio&t", None),
        ("&t", None),
        ("", None),
        ("transport", None),
        ("candidate-pair&abc", None),
    ],
)
def test_parse_track_key(key: str, expected: TrackKey | None) -> None:
    assert parse_track_key(key) == expected


def test_track_without_id_has_no_id_attribute() -> None:
    mapping = map_sample(
        with_metrics("sfu-recv", "inbound-cam-video", {"jitterAvg": 0.01}), room=None
    )
    attrs = dict(only_point(mapping).attributes)
    assert "daily.track.id" not in attrs
    assert attrs["daily.track.kind"] == "video"


# --- everything the catalogue does not know -----------------------------------------------

CONN = {**SESSION, "daily.connection": "sfu-recv"}
AUDIO = {**TRACK_ATTRS, "daily.track.kind": "audio"}


@pytest.mark.parametrize(
    ("fields", "path", "attributes"),
    [
        ({"futureFieldScore": 65.5}, "futureFieldScore", SESSION),
        ({"network": {"quality": 80}}, "network.quality", SESSION),
        ({"scores": [1, "x", None]}, "scores[0]", SESSION),
        ({"a": {"b": [{"c": 2}]}}, "a.b[0].c", SESSION),
        # a catalogued field that holds an object is walked like any other
        ({"videoRecvPacketLoss": {"fraction": 0.1}}, "videoRecvPacketLoss.fraction", SESSION),
        (
            {"metrics": {"sfu-recv": {"transport": {"availableOutgoingBitrate": 2e6}}}},
            "metrics.sfu-recv.transport.availableOutgoingBitrate",
            CONN,
        ),
        (
            # the track id lives in `daily.track.id`, never in the path
            {"metrics": {"sfu-recv": {"inbound-cam-audio&abc": {"futureScore": 3}}}},
            "metrics.sfu-recv.inbound-cam-audio.futureScore",
            AUDIO,
        ),
        (
            {"metrics": {"sfu-recv": {"inbound-cam-audio&abc": {"codec": {"clockRate": 48000}}}}},
            "metrics.sfu-recv.inbound-cam-audio.codec.clockRate",
            AUDIO,
        ),
        (
            {"metrics": {"sfu-recv": {"inbound-cam-audio&abc": {"jitterAvg": {"p95": 0.1}}}}},
            "metrics.sfu-recv.inbound-cam-audio.jitterAvg.p95",
            AUDIO,
        ),
        (
            {"metrics": {"sfu-recv": {"inbound-cam-audio&abc": 7}}},
            "metrics.sfu-recv.inbound-cam-audio",
            AUDIO,
        ),
        # keys that are no track keep their whole key in the path and add no track attributes
        (
            {"metrics": {"sfu-recv": {"candidate-pair&x": {"rttAvg": 0.1}}}},
            "metrics.sfu-recv.candidate-pair&x.rttAvg",
            CONN,
        ),
        (
            {"metrics": {"sfu-recv": {"sideways-cam-audio&t": {"jitterAvg": 0.1}}}},
            "metrics.sfu-recv.sideways-cam-audio&t.jitterAvg",
            CONN,
        ),
        ({"metrics": {"sfu-recv": {"transport": 5}}}, "metrics.sfu-recv.transport", CONN),
        ({"metrics": {"sfu-recv": 4}}, "metrics.sfu-recv", CONN),
        ({"metrics": {"sfu-recv": [4]}}, "metrics.sfu-recv[0]", CONN),
        ({"metrics": 3}, "metrics", SESSION),
        ({"metrics": [{"rttAvg": 1}]}, "metrics[0].rttAvg", SESSION),
    ],
)
def test_unknown_numbers_become_generic_points(
    fields: dict[str, Any], path: str, attributes: dict[str, str]
) -> None:
    point = map_sample(sample(**fields), room=None).points[0]
    assert (point.name, point.unit) == (GENERIC_METRIC, "")
    assert dict(point.attributes) == {**attributes, "daily.metric.path": path}


@pytest.mark.parametrize(
    "value",
    ["high", "", True, False, None, math.nan, math.inf, -math.inf, 10**400],
)
@pytest.mark.parametrize(
    "where",
    ["userRecvBitsPerSecAvg", "futureFieldScore", "transport", "track", "deep"],
)
def test_non_numbers_are_ignored_and_counted(value: object, where: str) -> None:
    if where == "transport":
        raw = with_metrics("sfu-recv", "transport", {"rttAvg": value})
    elif where == "track":
        raw = with_metrics("sfu-recv", "inbound-cam-audio&a", {"jitterAvg": value})
    elif where == "deep":
        raw = sample(x={"y": [value]})
    else:
        raw = sample(**{where: value})
    mapping = map_sample(raw, room=None)
    assert mapping.points == []
    assert mapping.ignored_non_numeric == 1
    assert mapping.truncated == 0


def test_empty_containers_are_neither_points_nor_ignored() -> None:
    mapping = map_sample(sample(a={}, b=[], metrics={"sfu-recv": {}}), room=None)
    assert (mapping.points, mapping.ignored_non_numeric) == ([], 0)


def test_identity_fields_are_never_points() -> None:
    # Even odd identity values (a numeric domain name) stay out of the data points.
    mapping = map_sample(sample(domainName=7, clientTime=12, roomName=3), room="r")
    assert (mapping.points, mapping.ignored_non_numeric) == ([], 0)


def test_big_integers_that_fit_a_double_are_kept() -> None:
    point = only_point(map_sample(sample(futureCounter=2**80), room=None))
    assert point.value == float(2**80)


@pytest.mark.parametrize(
    ("own", "given", "expected"),
    [
        ("standup", "other", "standup"),  # the sample's own room wins
        (None, "from-discovery", "from-discovery"),
        ("", "from-discovery", "from-discovery"),
        (42, "from-discovery", "from-discovery"),
        (None, None, None),
        (None, "", None),
    ],
)
def test_room(own: object, given: str | None, expected: str | None) -> None:
    raw = sample(userRecvBitsPerSecAvg=1)
    if own is None:
        del raw["roomName"]
    else:
        raw["roomName"] = own
    attrs = dict(only_point(map_sample(raw, room=given)).attributes)
    assert attrs.get("daily.room") == expected
    assert ("daily.room" in attrs) is (expected is not None)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        "sample",
        {},
        {k: v for k, v in sample().items() if k != "time"},
        sample(time="yesterday"),
        sample(time=1774283575),
        {k: v for k, v in sample().items() if k != "mtgSessionId"},
        sample(mtgSessionId=""),
        sample(mtgSessionId=12),
        {k: v for k, v in sample().items() if k != "userSessionId"},
        sample(userSessionId=None),
        sample(userSessionId=["x"]),
    ],
)
def test_malformed_samples_raise(bad: Any) -> None:
    with pytest.raises(MalformedRecord):
        map_sample(bad, room=None)
    with pytest.raises(MalformedRecord):
        validate_sample(bad)


def test_validate_sample() -> None:
    valid = validate_sample(sample())
    assert (valid.time_ns, valid.mtg_session_id) == (T_NS, MTG)


def test_depth_limit_truncates() -> None:
    deep: Any = 1.0
    for _ in range(MAX_DEPTH + 5):
        deep = {"d": deep}
    shallow: Any = 2.0
    for _ in range(MAX_DEPTH - 1):
        shallow = {"d": shallow}
    mapping = map_sample(sample(deep=deep, shallow=shallow), room=None)
    assert [p.value for p in mapping.points] == [2.0]
    assert mapping.truncated == 1


def test_point_limit_truncates() -> None:
    mapping = map_sample(sample(many=list(range(MAX_POINTS_PER_SAMPLE + 10))), room=None)
    assert len(mapping.points) == MAX_POINTS_PER_SAMPLE
    assert mapping.truncated == 10


def test_mapping_does_not_modify_the_sample() -> None:
    raw = simulator_samples(1)[0]
    before = copy.deepcopy(raw)
    map_sample(raw, room="x")
    fill_sample_log_record(LogRecord(), raw, time_ns=1, observed_ns=2, uid="u", room="x")
    assert raw == before


# --- the simulator's real output ----------------------------------------------------------


async def test_simulator_samples_map_to_the_catalogue(aiohttp_client: ClientFactory) -> None:
    config = SimulatorConfig(base_time=BASE, domains={"acme": "KEY"}, meetings_per_domain=1)
    client = await aiohttp_client(create_app(config, clock=lambda: BASE))
    meeting = client.app[SIM_KEY].domain_meetings("acme")[0]
    resp = await client.get(
        "/v1/logs",
        params={
            "mtgSessionId": meeting.id,
            "includeMetrics": "true",
            "includeLogs": "false",
            "order": "ASC",
            "limit": "20",
        },
        headers={"Authorization": "Bearer KEY"},
    )
    assert resp.status == 200
    samples = (await resp.json())["metrics"]
    assert len(samples) == 20
    for raw in samples:
        mapping = map_sample(raw, room=None)
        names = Counter(p.name for p in mapping.points)
        others = len(meeting.participants) - 1
        assert names == {
            "daily.call.recv.bitrate.avg": 1,
            "daily.call.recv.bitrate.min": 1,
            "daily.call.recv.bitrate.max": 1,
            "daily.call.send.bitrate.avg": 1,
            "daily.call.send.bitrate.min": 1,
            "daily.call.send.bitrate.max": 1,
            "daily.call.video.recv.packet_loss": 1,
            "daily.call.transport.rtt.avg": 2,  # sfu-recv and sfu-send
            "daily.call.track.jitter.avg": 2 * others,
            "daily.call.track.packet_loss": 2 * others,
            "daily.call.track.bitrate.avg": 2 * others + 2,  # + the two outbound tracks
            "daily.call.track.frame_rate.avg": others,
            GENERIC_METRIC: 1,  # futureFieldScore
        }
        generic = next(p for p in mapping.points if p.name == GENERIC_METRIC)
        assert generic.attributes["daily.metric.path"] == "futureFieldScore"
        assert mapping.ignored_non_numeric == 1  # browserName
        assert all(p.time_ns == parse_time_ns(raw["time"]) for p in mapping.points)
        assert all(p.attributes["daily.room"] == meeting.room for p in mapping.points)
        jitter = [p.value for p in mapping.points if p.name == "daily.call.track.jitter.avg"]
        assert all(0 <= j < 1 for j in jitter)  # seconds, not milliseconds
        kinds = {
            (p.attributes["daily.track.direction"], p.attributes["daily.track.kind"])
            for p in mapping.points
            if p.name == "daily.call.track.bitrate.avg"
        }
        assert kinds == {
            ("inbound", "audio"),
            ("inbound", "video"),
            ("outbound", "audio"),
            ("outbound", "video"),
        }


# --- MetricsBatch -------------------------------------------------------------------------


def resource() -> Any:
    return domain_resource("acme", {"deployment.environment": "test"})


def test_metrics_batch_builds_one_gauge_per_name() -> None:
    samples = simulator_samples(40)
    batch = MetricsBatch(resource())
    mappings = [map_sample(raw, room=None) for raw in samples]
    added = [batch.add(m) for m in mappings]
    assert added == [len(m.points) for m in mappings]
    assert batch.size == sum(added) > 0

    parsed = ExportMetricsServiceRequest.FromString(batch.request.SerializeToString())
    assert parsed == batch.request
    (resource_metrics,) = parsed.resource_metrics
    resource_attrs = {kv.key: decode_any(kv.value) for kv in resource_metrics.resource.attributes}
    assert resource_attrs["daily.domain"] == "acme"
    assert resource_attrs["deployment.environment"] == "test"
    (scope_metrics,) = resource_metrics.scope_metrics
    assert (scope_metrics.scope.name, scope_metrics.scope.version) == (
        "daily_otel_bridge",
        __version__,
    )
    names = [m.name for m in scope_metrics.metrics]
    assert len(names) == len(set(names)) == batch.metric_count()
    expected = Counter(p.name for m in mappings for p in m.points)
    assert set(names) == set(expected)
    points_seen = 0
    for metric in scope_metrics.metrics:
        entry = CATALOGUE_BY_NAME[metric.name]
        assert (metric.unit, metric.description) == (entry.unit, entry.description)
        assert metric.WhichOneof("data") == "gauge"
        assert len(metric.gauge.data_points) == expected[metric.name]
        points_seen += len(metric.gauge.data_points)
        for dp in metric.gauge.data_points:
            assert dp.WhichOneof("value") == "as_double"
            assert dp.time_unix_nano > 0
            assert dp.start_time_unix_nano == 0  # a gauge has no start
    assert points_seen == batch.size

    # Points come out in order per metric, each with its own value and attributes.
    first = mappings[0].points[0]
    dp = next(m for m in scope_metrics.metrics if m.name == first.name).gauge.data_points[0]
    assert dp.as_double == first.value
    assert dp.time_unix_nano == first.time_ns
    assert {kv.key: decode_any(kv.value) for kv in dp.attributes} == dict(first.attributes)


def test_metrics_batch_keeps_values_apart_when_attributes_are_shared() -> None:
    attrs = {"daily.mtg_session_id": "m"}
    points = [Point("daily.call.recv.bitrate.avg", "bit/s", 5, float(i), attrs) for i in range(3)]
    points.append(Point("daily.call.recv.bitrate.avg", "bit/s", 6, 9.0, attrs))
    batch = MetricsBatch(resource())
    batch.add(SampleMapping(points, 0))
    (metric,) = batch.request.resource_metrics[0].scope_metrics[0].metrics
    got = [(dp.time_unix_nano, dp.as_double) for dp in metric.gauge.data_points]
    assert got == [(5, 0.0), (5, 1.0), (5, 2.0), (6, 9.0)]


def test_metrics_batch_names_an_unknown_metric_with_the_point_unit() -> None:
    batch = MetricsBatch(resource())
    batch.add(SampleMapping([Point("x.y", "ms", 1, 2.0, {})], 0))
    (metric,) = batch.request.resource_metrics[0].scope_metrics[0].metrics
    assert (metric.name, metric.unit, metric.description) == ("x.y", "ms", "")


def test_empty_batch() -> None:
    batch = MetricsBatch(resource())
    batch.add(SampleMapping([], 3))
    assert batch.size == 0
    assert batch.metric_count() == 0


# --- metrics_as_logs ----------------------------------------------------------------------


def filled(raw: dict[str, Any], room: str | None = None) -> LogRecord:
    request = ExportLogsServiceRequest()
    target = request.resource_logs.add().scope_logs.add().log_records.add()
    fill_sample_log_record(
        target, raw, time_ns=parse_time_ns(raw["time"]), observed_ns=42, uid="uid-1", room=room
    )
    # A receiver must be able to parse it: round trip the whole request.
    wire = request.SerializeToString(deterministic=True)
    parsed = ExportLogsServiceRequest.FromString(wire)
    assert parsed.SerializeToString(deterministic=True) == wire  # `==` fails on NaN
    record: LogRecord = parsed.resource_logs[0].scope_logs[0].log_records[0]
    return record


def test_sample_log_record() -> None:
    raw = simulator_samples(1)[0]
    record = filled(raw, room="ignored-the-sample-names-its-room")
    assert record.event_name == "daily.metrics"
    assert (record.severity_number, record.severity_text) == (9, "INFO")
    assert record.time_unix_nano == parse_time_ns(raw["time"])
    assert record.observed_time_unix_nano == 42
    assert decode_any(record.body) == raw
    assert record.body.WhichOneof("value") == "kvlist_value"
    attrs = {kv.key: decode_any(kv.value) for kv in record.attributes}
    assert attrs == {
        "daily.mtg_session_id": raw["mtgSessionId"],
        "daily.user_session_id": raw["userSessionId"],
        "daily.client_time": raw["clientTime"],
        "daily.room": raw["roomName"],
        "log.record.uid": "uid-1",
    }


def test_sample_log_body_matches_encoding_any_value() -> None:
    # fill_any_value writes in place for speed; a body written in place must equal the
    # standalone AnyValue of the same sample.
    for raw in simulator_samples(5):
        target = AnyValue()
        fill_any_value(target, raw)
        assert target == any_value(raw)


def test_sample_log_record_room_fallback() -> None:
    raw = sample(userRecvBitsPerSecAvg=1)
    del raw["roomName"], raw["clientTime"]
    attrs = {kv.key: decode_any(kv.value) for kv in filled(raw, room="r1").attributes}
    assert attrs["daily.room"] == "r1"
    assert "daily.client_time" not in attrs
    attrs = {kv.key: decode_any(kv.value) for kv in filled(raw).attributes}
    assert "daily.room" not in attrs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, {}),
        ([], []),
        (2**70, str(2**70)),  # beyond int64: protobuf would refuse the integer
        (-(2**63), -(2**63)),
        (2**63 - 1, 2**63 - 1),
        (True, True),
        (None, None),
        (b"\x01", "01"),
        ((1, "a"), [1, "a"]),
    ],
)
def test_sample_log_body_odd_values(value: object, expected: object) -> None:
    record = filled(sample(odd=value))
    assert decode_any(record.body)["odd"] == expected


def test_sample_log_body_deep_nesting_becomes_json_text() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = {"d": deep}
    body = decode_any(filled(sample(deep=deep)).body)
    node = body["deep"]
    for _ in range(MAX_BODY_DEPTH - 1):
        node = node["d"]
    assert isinstance(node, str)
    assert node.startswith('{"d": {"d": ')


# --- nothing crashes ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=40,
)
track_keys = st.sampled_from(
    ["transport", "inbound-cam-audio&a", "outbound-screen-video&b", "inbound-cam-video", "x&y"]
)
metrics_objects = st.dictionaries(
    st.sampled_from(["sfu-recv", "sfu-send", "p2p"]),
    st.dictionaries(
        track_keys | st.text(max_size=10),
        st.dictionaries(
            st.sampled_from(["jitterAvg", "packetsLostPct", "rttAvg", "bitsSentPerSecAvg"])
            | st.text(max_size=8),
            json_values,
            max_size=5,
        )
        | json_values,
        max_size=5,
    )
    | json_values,
    max_size=3,
)
well_formed = st.fixed_dictionaries(
    {
        "time": st.just(T),
        "mtgSessionId": st.just(MTG),
        "userSessionId": st.just(USER),
    },
    optional={
        "roomName": json_values,
        "metrics": metrics_objects,
        "userRecvBitsPerSecAvg": json_values,
        "videoRecvPacketLoss": json_values,
        "extra": json_values,
    },
)
anything = st.dictionaries(
    st.sampled_from(["time", "mtgSessionId", "userSessionId", "roomName", "metrics"])
    | st.text(max_size=8),
    json_values,
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=well_formed | anything)
def test_any_json_like_sample_maps_or_raises_malformed(raw: dict[str, Any]) -> None:
    try:
        mapping = map_sample(raw, room="r")
    except MalformedRecord:
        return
    for point in mapping.points:
        assert math.isfinite(point.value)
        assert all(isinstance(v, str) for v in point.attributes.values())
    batch = MetricsBatch(resource())
    batch.add(mapping)
    request = batch.request
    assert ExportMetricsServiceRequest.FromString(request.SerializeToString()) == request
    record = filled(raw, room="r")
    assert record.event_name == "daily.metrics"
