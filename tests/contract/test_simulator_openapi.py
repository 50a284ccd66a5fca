"""Contract fuzzing of the simulator with schemathesis, against Daily's OpenAPI text for
GET /logs (openapi/daily-list-logs.yaml, Daily's own) and transcriptions of Daily's
reference pages for /meetings, /presence, /logs/api and /webhooks (each file says which
page). Checks: no 5xx, and every answer conforms to the schema of its status.

The simulator runs on 127.0.0.1 in a thread; every case is sent there (the texts' own
server, Daily's, is never contacted), and webhook URLs off the loopback are refused by the
simulator, so nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from daily_otel_bridge.testing.simulator import SimulatorConfig, SimulatorThread

OPENAPI = Path(__file__).parent / "openapi"
AUTH = {"Authorization": "Bearer demo-key"}
TEXTS = (
    "daily-list-logs.yaml",
    "daily-meetings.yaml",
    "daily-presence.yaml",
    "daily-list-api-logs.yaml",
    "daily-webhooks.yaml",
)
EXAMPLES = 40  # per operation: about 15 operations, well under 30 s in all


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(
        live=True,
        live_meetings=2,
        presence_lag=0.0,
        webhook_timeout=0.5,
        webhook_tick=0.05,
    )
    with SimulatorThread(config) as sim:
        yield sim


def operations() -> Iterator[Any]:
    for name in TEXTS:
        raw = yaml.safe_load((OPENAPI / name).read_text())
        schema = schemathesis.openapi.from_dict(raw)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"{name} is not a valid OpenAPI text"
            operation = result.ok()
            yield pytest.param(operation, id=f"{name}:{operation.method.upper()} {operation.path}")


@pytest.mark.parametrize("operation", list(operations()))
def test_simulator_conforms(simulator: SimulatorThread, operation: Any) -> None:
    base_url = simulator.url  # http://127.0.0.1:PORT/v1
    assert base_url.startswith("http://127.0.0.1:")

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers=AUTH,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=10,
        )

    run()
