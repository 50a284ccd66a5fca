"""Test-wide settings: in-process pipelines log at INFO (DEBUG has a line per page), and a
test that configures logging (the CLI's tests do) leaves it as it found it: a later test's
log line must not land in a stream that test closed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = ["tests.pg"]


def _default_logging() -> None:
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


_default_logging()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    _default_logging()
    root.handlers[:] = handlers
    root.setLevel(level)
