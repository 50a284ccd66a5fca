"""Configuration problems: `ConfigError`, the collector of ``path: message`` lines behind it,
and the translation of pydantic's errors into our own wording.

Kept apart so that every step of loading (the YAML, ``${VAR}`` expansion, the
``OTEL_EXPORTER_OTLP_*`` overlay, the model's validation) reports in one voice: the YAML path
a user has to fix, a message of our own that never quotes the input, and every known secret
scrubbed from the final text. Pure, no I/O.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from daily_otel_bridge.core.secrets import scrub

__all__ = ["ConfigError", "Problems", "join_path", "loc_path", "pydantic_problems"]

# Secrets shorter than this are not scrubbed from error text: they would mangle ordinary words,
# and no real credential is that short.
_MIN_SCRUB_LEN = 8


class ConfigError(Exception):
    """An invalid configuration: one ``path: message`` line per problem.

    ``problems`` keeps the (path, message) pairs for callers that want to format them.
    """

    def __init__(self, problems: str | Iterable[tuple[str, str]]) -> None:
        if isinstance(problems, str):
            self.problems: list[tuple[str, str]] = [("", problems)]
        else:
            self.problems = list(problems)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.problems))


def join_path(path: str, part: object) -> str:
    """`path` one level down: ``domains`` + 0 -> ``domains[0]``, ``export`` + ``timeout`` ->
    ``export.timeout``."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


class Problems:
    """Collects (path, message) pairs; a problem under an already reported path is dropped, so
    one mistake is reported once even when several later steps trip over it."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.secrets: set[str] = set()
        self.silenced: set[str] = set()

    def covered(self, path: str) -> bool:
        return any(
            path == seen or path.startswith((seen + ".", seen + "["))
            for seen in [*(p for p, _ in self.items), *self.silenced]
            if seen
        )

    def silence(self, path: str) -> None:
        """Drop later problems under `path`: their cause is already reported elsewhere."""
        self.silenced.add(path)

    def add(self, path: str, message: str) -> None:
        if not self.covered(path):
            self.items.append((path, message))

    def secret(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= _MIN_SCRUB_LEN:
            self.secrets.add(value)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        raise ConfigError([(scrub(p, self.secrets), scrub(m, self.secrets)) for p, m in self.items])


def loc_path(prefix: str, loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """`prefix` joined with a pydantic loc; also says whether the error is about a dict key."""
    is_key = bool(loc) and loc[-1] == "[key]"
    path = prefix
    for part in loc[:-1] if is_key else loc:
        path = join_path(path, part)
    return path, is_key


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if (
        get_origin(annotation) is None
        and isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
    ):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        found = _find_model(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _fmt_number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        if model is not None and isinstance(loc[-1], str):
            names = [n for n in model.model_fields if n != "config_path"]
            close = difflib.get_close_matches(loc[-1], names, n=1)
            if close:
                return f"unknown key (did you mean {close[0]}?)"
        return "unknown key"
    simple = {
        "missing": "missing (required)",
        "string_type": "must be a string",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "finite_number": "must be a finite number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "path_type": "must be a file path",
        "string_too_short": "must not be empty",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    bounds = {
        "greater_than": ("gt", "greater than"),
        "greater_than_equal": ("ge", "at least"),
        "less_than": ("lt", "less than"),
        "less_than_equal": ("le", "at most"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        return f"must be {words} {_fmt_number(ctx.get(key))}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "value_error":
        return str(ctx.get("error", "invalid value"))
    # Our own PydanticCustomErrors, and any other pydantic message: pydantic keeps the input out
    # of `msg` (it lives in `input`, which we never read).
    return str(error.get("msg", "invalid value"))


def pydantic_problems(
    exc: ValidationError, root: type[BaseModel]
) -> list[tuple[tuple[int | str, ...], str]]:
    """(loc, message) per error of `exc`, in our wording; `root` is the model validated, for
    the "did you mean" of an unknown key."""
    out: list[tuple[tuple[int | str, ...], str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        message = _message(error, root)
        if loc and loc[-1] == "[key]":
            message = f"key {message}"
        out.append((loc, message))
    return out


def listen_reason(error: OSError) -> str:
    """Why an address cannot be bound, in words that say what to change (any `listen` key)."""
    if error.errno == errno.EADDRINUSE:
        return "address already in use (another process listens there; pick another port)"
    if error.errno == errno.EADDRNOTAVAIL:
        return "this host has no such address"
    if error.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return error.strerror or type(error).__name__
