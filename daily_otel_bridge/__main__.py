"""`python -m daily_otel_bridge` is the same program as the console script."""

from daily_otel_bridge.cli.main import main

raise SystemExit(main())
