"""Test and benchmark helpers: an in-process OTLP receiver and a harness for the rotel collector.

Not used by the daemon itself; importing this package pulls in nothing beyond the daemon's own
dependencies.
"""
