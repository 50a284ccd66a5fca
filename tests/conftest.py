"""Shared fixtures: only plugins live here, each in its own module."""

pytest_plugins = ["tests.pg"]
