"""``python -m daily_otel_bridge.testing.simulator``."""

from daily_otel_bridge.testing.simulator.cli import main

raise SystemExit(main())
