"""Test-wide settings: in-process pipelines log at INFO (DEBUG has a line per page)."""

from __future__ import annotations

import logging

import structlog

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
