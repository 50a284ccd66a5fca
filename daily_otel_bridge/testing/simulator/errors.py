"""Daily's error answers and the strict parsing of query parameters that produces them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from aiohttp import web


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, info: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(info)
        self.status = status
        self.error = error
        self.info = info
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = json.dumps({"error": self.error, "info": self.info})
        return web.Response(
            status=self.status, text=body, content_type="application/json", headers=self.headers
        )


def error_type(status: int) -> str:
    return {
        400: "invalid-request-error",
        401: "authentication-error",
        403: "forbidden-error",
        404: "not-found",
        429: "rate-limit-error",
    }.get(status, "server-error" if status >= 500 else "invalid-request-error")


_INT_RE = re.compile(r"-?[0-9]+\Z")
_NUM_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")


def int_param(query: Mapping[str, str], name: str, default: int) -> int:
    value = opt_int_param(query, name)
    return default if value is None else value


def opt_int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _INT_RE.match(raw):
        raise ApiError(400, "invalid-request-error", f"{name} must be an integer")
    return int(raw)


def num_param(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _NUM_RE.match(raw):
        raise ApiError(400, "invalid-request-error", f"{name} must be a number")
    return float(raw)


def bool_param(query: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ApiError(400, "invalid-request-error", f"{name} must be true or false")
