"""The Grafana dashboard deploy/grafana/call-quality.json, and the catalogue in docs/metrics.md.

No Grafana runs here: the dashboard is checked against what an import needs (the JSON model's
required keys, a declared data source input, a consistent grid) and against the bridge itself:
every metric a query names must be a catalogue entry translated the way the Collector's
Prometheus exporters translate it (`add_metric_suffixes: true`, the default), every label a
known attribute, every `$variable` defined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from daily_otel_bridge.core.mapping import ATTR_MTG_SESSION_ID, ATTR_ROOM, ATTR_USER_SESSION_ID
from daily_otel_bridge.core.metrics_mapping import (
    ATTR_CONNECTION,
    ATTR_METRIC_PATH,
    ATTR_TRACK_DIRECTION,
    ATTR_TRACK_ID,
    ATTR_TRACK_KIND,
    ATTR_TRACK_SOURCE,
    CATALOGUE,
)
from tests.deploy._helpers import DEPLOY, REPO

DASHBOARD = DEPLOY / "grafana" / "call-quality.json"
DOCS = REPO / "docs" / "metrics.md"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# --- the OpenTelemetry -> Prometheus name translation ---------------------------------------
# A port of the rules in prometheus/otlptranslator (normalizeName, buildUnitSuffixes), which
# the Collector's prometheus and prometheusremotewrite exporters, Prometheus's OTLP receiver
# and Mimir apply by default. Only the unit table entries matter that a catalogue could use.

_UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "y": "year"}


def _clean_unit(unit: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9:]", "_", unit)).lstrip("_")


def prometheus_name(name: str, unit: str) -> str:
    """The Prometheus name of an OTel gauge, with the default unit and type suffixes."""
    tokens = [t for t in re.split(r"[^a-zA-Z0-9:]+", name) if t]
    main, _, per = (part.strip() for part in unit.partition("/"))
    main_suffix = "" if not main or re.search(r"[{}]", main) else _UNITS.get(main, main)
    per_suffix = "" if not per or re.search(r"[{}]", per) else _PER_UNITS.get(per, per)
    main_suffix = _clean_unit(main_suffix)
    per_suffix = _clean_unit(f"per_{per_suffix}" if per_suffix else "").rstrip("_")
    if per_suffix == "per" or per_suffix in tokens:
        per_suffix = ""
    if main_suffix in tokens:
        main_suffix = ""
    if main_suffix:
        tokens.append(main_suffix.rstrip("_"))
    if per_suffix:
        tokens.append(per_suffix)
    if unit == "1":  # gauges with unit 1 are ratios
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    return "_".join(tokens)


def prometheus_label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        # the translator's own documented examples
        ("http.server.request.duration", "s", "http_server_request_duration_seconds"),
        ("memory.usage", "By", "memory_usage_bytes"),
        ("system.network.io", "By/s", "system_network_io_bytes_per_second"),
        ("cpu.utilization", "1", "cpu_utilization_ratio"),
        ("queue.size", "{item}", "queue_size"),
        ("requests", "{request}/s", "requests_per_second"),
        ("latency.seconds", "s", "latency_seconds"),
        ("disk.usage", "%", "disk_usage_percent"),
        ("link.speed", "bit/s", "link_speed_bit_per_second"),
        ("x", "", "x"),
    ],
)
def test_prometheus_name_helper(name: str, unit: str, expected: str) -> None:
    assert prometheus_name(name, unit) == expected


CATALOGUE_METRICS = {prometheus_name(e.name, e.unit) for e in CATALOGUE}
KNOWN_LABELS = {
    prometheus_label(a)
    for a in (
        ATTR_MTG_SESSION_ID,
        ATTR_USER_SESSION_ID,
        ATTR_ROOM,
        ATTR_CONNECTION,
        ATTR_TRACK_DIRECTION,
        ATTR_TRACK_SOURCE,
        ATTR_TRACK_KIND,
        ATTR_TRACK_ID,
        ATTR_METRIC_PATH,
    )
} | {"job", "instance"}  # what the translation makes of service.name and service.instance.id

# --- reading PromQL just enough ------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*$')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_VARIABLE = re.compile(r"\$(?:\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|([a-zA-Z_][a-zA-Z0-9_]*))")
_LEGEND_LABEL = re.compile(r"\{\{\s*([^}\s]+)\s*\}\}")


def labels_and_metrics(expr: str) -> tuple[set[str], set[str]]:
    """(label names, metric names) that a PromQL expression mentions."""
    labels: set[str] = set()
    for block in _MATCHERS.findall(expr):
        for matcher in filter(str.strip, _split_matchers(block)):
            found = _MATCHER.match(matcher)
            assert found, f"not a label matcher: {matcher!r} in {expr!r}"
            labels.add(found.group(1))
    for group in _GROUPING.findall(expr):
        labels.update(part.strip() for part in group.split(",") if part.strip())
    rest = _GROUPING.sub(" ", _MATCHERS.sub(" ", expr))
    rest = re.sub(r"\[[^\]]*\]", " ", _STRING.sub(" ", rest))  # strings, range selectors
    metrics = {
        m.group(0)
        for m in _IDENT.finditer(rest)
        if m.group(0) not in _KEYWORDS and not rest[m.end() :].lstrip().startswith("(")
    }
    return labels, metrics


def _split_matchers(block: str) -> list[str]:
    # Commas inside quoted values (a regex like "a,b") must not split a matcher.
    parts, current, quoted, escaped = [], "", False, False
    for char in block:
        if char == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    parts.append(current)
    return parts


def test_promql_reader() -> None:
    labels, metrics = labels_and_metrics(
        'max by (a, b) (rate(x_total{c=~"$v", d="1,2"}[5m])) / on(e) y'
    )
    assert labels == {"a", "b", "c", "d", "e"}
    assert metrics == {"x_total", "y"}


# --- the dashboard ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside collapsed rows


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every variable query."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", text)
            assert found, f"variable {variable['name']}: expected label_values(metric, label)"
            yield f"variable {variable['name']}", f"group by ({found.group(2)}) ({found.group(1)})"


def test_top_level(dashboard: dict[str, Any]) -> None:
    for key in ("title", "uid", "panels", "schemaVersion", "templating", "__inputs"):
        assert key in dashboard, key
    assert isinstance(dashboard["title"], str)
    assert dashboard["title"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int)
    assert 36 <= dashboard["schemaVersion"] <= 41
    # An import creates the dashboard: a fixed numeric id would clash with an existing one.
    assert dashboard.get("id") is None
    assert isinstance(dashboard["panels"], list)
    assert dashboard["panels"]
    assert isinstance(dashboard["templating"]["list"], list)


def test_data_source_is_an_import_input(dashboard: dict[str, Any]) -> None:
    inputs = {i["name"]: i for i in dashboard["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    # Every `${DS_...}` placeholder the import must fill in is declared.
    text = DASHBOARD.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{(DS_[A-Z0-9_]+)\}", text)) <= set(inputs)
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert ("datasource", "prometheus") in required
    assert ("grafana", "grafana") in required
    used_types = {p["type"] for p in panels(dashboard)} - {"row"}
    assert {("panel", t) for t in used_types} <= required


def test_every_data_source_reference_is_the_input(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_panels(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        assert isinstance(panel["type"], str)
        assert panel["type"]
        assert isinstance(panel["title"], str)
        assert panel["title"]
        grid = panel["gridPos"]
        for key in ("h", "w", "x", "y"):
            assert type(grid[key]) is int, (panel["title"], key)
        assert 1 <= grid["w"] <= 24
        assert grid["h"] >= 1
        assert grid["x"] >= 0
        assert grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids))
        for target in targets:
            assert isinstance(target["expr"], str)
            assert target["expr"].strip()


def test_queries_use_catalogue_metrics_and_known_labels(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for where, expr in queries(dashboard):
        labels, metrics = labels_and_metrics(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        assert metrics <= CATALOGUE_METRICS, f"{where}: {metrics - CATALOGUE_METRICS}"
        assert labels <= KNOWN_LABELS, f"{where}: {labels - KNOWN_LABELS}"
        used |= metrics
    # The panels the issue asks for: bitrate both ways, loss, jitter, round-trip time.
    for name in (
        "daily.call.recv.bitrate.avg",
        "daily.call.send.bitrate.avg",
        "daily.call.video.recv.packet_loss",
        "daily.call.track.packet_loss",
        "daily.call.track.jitter.avg",
        "daily.call.transport.rtt.avg",
    ):
        entry = next(e for e in CATALOGUE if e.name == name)
        assert prometheus_name(entry.name, entry.unit) in used, name


def test_legends_name_labels_the_query_keeps(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            legend = target.get("legendFormat", "")
            wanted = set(_LEGEND_LABEL.findall(legend))
            if not wanted:
                continue
            kept = set()
            for group in re.findall(r"\bby\s*\(([^()]*)\)", target["expr"]):
                kept |= {part.strip() for part in group.split(",")}
            assert wanted <= kept, f"{panel['title']!r}: legend {legend!r} needs {wanted - kept}"


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"room", "session", "participant"} <= set(variables)
    assert "daily_room" in variables["room"]["definition"]
    assert variables["session"]["definition"].endswith("daily_mtg_session_id)")
    assert variables["participant"]["definition"].endswith("daily_user_session_id)")
    for variable in variables.values():
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        assert variable.get("definition", text) == text
        if variable.get("multi") or variable.get("includeAll"):
            # A multi-value or All selection expands to a regex: only =~ can match it.
            exact = re.compile(rf'(?<![=!~])!?=\s*"\$\{{?{re.escape(variable["name"])}\b')
            for where, expr in queries(dashboard):
                assert not exact.search(expr), f"{where}: use =~ for ${variable['name']}"


def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    text = json.dumps({k: v for k, v in dashboard.items() if k != "__inputs"})
    used = {a or b for a, b in _VARIABLE.findall(text)}
    inputs = {i["name"] for i in dashboard["__inputs"]}
    builtins = {u for u in used if u.startswith("__")}
    assert used - builtins - inputs <= defined


# --- docs/metrics.md -------------------------------------------------------------------------


def test_docs_list_the_catalogue() -> None:
    rows = {
        cells[0].strip("` "): [c.strip() for c in cells]
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `daily.call.")
        for cells in [line.strip("|").split("|")]
    }
    assert set(rows) == {e.name for e in CATALOGUE}
    for entry in CATALOGUE:
        row = rows[entry.name]
        assert row[1] == f"`{prometheus_name(entry.name, entry.unit)}`", entry.name
        assert row[2] == (f"`{entry.unit}`" if entry.unit else "(none)"), entry.name
        for field in entry.fields:
            assert field in row[4], (entry.name, field)
