"""daily-otel-bridge: Daily call logs and call-quality metrics to OpenTelemetry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("daily-otel-bridge")
except PackageNotFoundError:  # running from a checkout without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
