"""Loading: from a YAML file (or an already-parsed document) to a validated `Settings`.

Loading is a small pipeline, each step kept apart so that every problem can be reported with
the YAML path a user has to fix:

1. ``yaml`` (a ``SafeLoader`` that also refuses duplicate keys) -> plain tree;
2. ``${VAR}`` expansion on the tree's string values (never on the raw text, so an environment
   value cannot inject YAML structure);
3. a pre-pass that reads ``api_key_file`` (and the webhook secret and password files),
   resolves relative paths against the config file's directory and builds each domain's
   *effective* export section (``OTEL_EXPORTER_OTLP_*`` environment (`otel_env`) < global
   ``export`` < the domain's ``export``);
4. pydantic validation (`model`); its errors are rewritten into ``path: message`` lines
   (`errors`).

A secret (an API key, an export header value) is never echoed: the messages are our own and
never quote the input, pydantic is told to hide inputs, and as a last line of defence every
known secret string is scrubbed from the final error text. The only I/O here is reading the
config file and API key files.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from pydantic import ValidationError

from daily_otel_bridge.config.dsn import password_of
from daily_otel_bridge.config.errors import (
    ConfigError,
    Problems,
    join_path,
    loc_path,
    pydantic_problems,
)
from daily_otel_bridge.config.model import ExportSettings, Settings
from daily_otel_bridge.config.otel_env import ENV_PREFIX, Provenance, env_export_layer

__all__ = ["load_settings", "parse_settings", "read_secret_file"]

# An API key file bigger than this is certainly the wrong file; do not slurp it.
_MAX_KEY_FILE_BYTES = 4096


# --------------------------------------------------------------------------------------------
# Step 1: YAML


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one, and two
    `export:` sections or two `api_key:` lines are always a mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the base class report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        # Never str(exc): PyYAML quotes the offending line, which may hold a secret.
        where = ""
        if exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise ConfigError([(source, f"invalid YAML{where}: {exc.problem}")]) from None
    except yaml.YAMLError:
        raise ConfigError([(source, "invalid YAML")]) from None


# --------------------------------------------------------------------------------------------
# Step 2: ${VAR} expansion

_VAR_RE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{")


def _expand_str(value: str, environ: Mapping[str, str], path: str, problems: Problems) -> str:
    unset: list[str] = []
    malformed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal malformed
        matched = match.group(0)
        if matched == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            malformed = True
            return matched
        found = environ.get(name)
        default = match.group("default")
        if default is not None:
            # Shell semantics of ":-": the default also replaces an empty value.
            return found if found else default
        if found is None:
            unset.append(name)
            return matched
        return found

    expanded = _VAR_RE.sub(replace, value)
    if unset:
        names = ", ".join(dict.fromkeys(unset))
        noun = "variable" if len(unset) == 1 else "variables"
        problems.add(path, f"environment {noun} {names} not set")
    elif malformed:
        problems.add(
            path,
            "malformed ${...}: write ${NAME} or ${NAME:-default}, or $${ for a literal ${",
        )
    return expanded


def _expand(node: Any, environ: Mapping[str, str], path: str, problems: Problems) -> Any:
    if isinstance(node, str):
        return _expand_str(node, environ, path, problems)
    if isinstance(node, dict):
        return {k: _expand(v, environ, join_path(path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, environ, join_path(path, i), problems) for i, v in enumerate(node)]
    return node


# --------------------------------------------------------------------------------------------
# Step 3: the pre-pass (the environment layer itself comes from `otel_env`)

_EXPORT_PATH_KEYS = ("certificate_file", "client_certificate_file", "client_key_file")


def _resolve(value: Any, base_dir: Path | None) -> Any:
    if base_dir is None or not isinstance(value, str) or not value.strip():
        return value
    path = Path(value)
    return value if path.is_absolute() else str(base_dir / path)


def _overlay(
    base: Mapping[str, Any], provenance: Provenance, over: Mapping[Any, Any]
) -> tuple[dict[str, Any], Provenance, set[tuple[Any, ...]]]:
    """`over` laid over `base` key by key; `headers` merged per (lower-cased) name, a null
    header value removing an inherited header. Returns the layer, what of it still came from
    the environment, and which locs `over` provided."""
    layer = dict(base)
    prov = dict(provenance)
    provided: set[tuple[Any, ...]] = set()
    for key, value in over.items():
        if key == "headers" and isinstance(value, dict):
            inherited = layer.get("headers")
            headers = dict(inherited) if isinstance(inherited, dict) else {}
            for name, header_value in value.items():
                norm = name.strip().lower() if isinstance(name, str) else name
                prov.pop(("headers", norm), None)
                if header_value is None:
                    headers.pop(norm, None)
                else:
                    headers[norm] = header_value
                    provided.add(("headers", norm))
            layer["headers"] = headers
        elif key == "headers" and value is None:
            continue
        else:
            layer[key] = value
            prov.pop((key,), None)
            provided.add((key,))
    return layer, prov, provided


def _validate_export(
    layer: Mapping[str, Any],
    label: Callable[[tuple[int | str, ...]], str | None],
    problems: Problems,
) -> ExportSettings | None:
    try:
        return ExportSettings.model_validate(dict(layer))
    except ValidationError as exc:
        for loc, message in pydantic_problems(exc, ExportSettings):
            path = label(loc)
            if path is not None:
                problems.add(path, message)
        return None


def _export_mapping(value: Any, path: str, problems: Problems) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, "must be a mapping")
        return {}
    return value


def _secrets_of_headers(section: Any, problems: Problems) -> None:
    if isinstance(section, dict) and isinstance(section.get("headers"), dict):
        for value in section["headers"].values():
            problems.secret(value)


def _read_key_file(path: Path) -> str:
    """The API key in `path`; ValueError with a user-facing message (never the content)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):  # also keeps a FIFO from blocking start-up
        raise ValueError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            # fstat the opened file, not the name, so the check and the read see the same file.
            mode = os.fstat(handle.fileno()).st_mode
            if os.name == "posix" and mode & 0o077:
                raise ValueError(f"{path} is readable by other users; chmod 600 it")
            raw = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ValueError(f"{path} is too large to hold an API key")
    try:
        key = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not key:
        raise ValueError(f"{path} is empty")
    return key


def read_secret_file(path: Path) -> str:
    """The secret (an API key, a webhook secret, a password) in `path`, with the same checks
    as at start-up (a regular file, not readable by others, small, UTF-8, not empty);
    ValueError with a user-facing message (never the content). Public for the webhook
    receiver, which re-reads a secret file that `webhooks register` rewrote."""
    return _read_key_file(path)


def _take_secret(
    section: dict[Any, Any],
    path: str,
    base_dir: Path | None,
    problems: Problems,
    *,
    key: str,
    file_key: str,
    required: bool,
    read: bool = True,
    missing_hint: str = "",
) -> None:
    """Replace `file_key` by the secret it holds in `key` (its resolved path stays as a
    record); `read=False` only resolves the path (for a command that writes the file)."""
    has_key = section.get(key) is not None
    has_file = section.get(file_key) is not None
    if has_key and has_file:
        problems.add(f"{path}.{key}", f"set {key} or {file_key}, not both")
        section.pop(file_key)
    elif has_file:
        raw = section[file_key]
        if not isinstance(raw, str) or not raw.strip():
            problems.add(f"{path}.{file_key}", "must be a file path")
            problems.silence(f"{path}.{key}")
            return
        secret_path = Path(_resolve(raw.strip(), base_dir))
        section[file_key] = str(secret_path)
        if not read:
            section.pop(key, None)
            return
        try:
            secret = _read_key_file(secret_path)
        except ValueError as exc:
            message = str(exc)
            if missing_hint and not secret_path.exists():
                message += missing_hint
            problems.add(f"{path}.{file_key}", message)
            # Without the file there is no secret: "missing" would only add noise.
            problems.silence(f"{path}.{key}")
            return
        problems.secret(secret)
        section[key] = secret
    elif not has_key:
        if required:
            problems.add(f"{path}.{key}", f"missing; set {key} or {file_key}")
    else:
        problems.secret(section[key])


def _take_api_key(
    domain: dict[Any, Any], path: str, base_dir: Path | None, problems: Problems
) -> None:
    """Replace `api_key_file` by the key it holds (its resolved path stays as a record)."""
    _take_secret(
        domain, path, base_dir, problems, key="api_key", file_key="api_key_file", required=True
    )


def _take_webhook_secret(
    domain: dict[Any, Any], path: str, base_dir: Path | None, problems: Problems, read: bool
) -> None:
    name = domain.get("name")
    hint = f" (`daily-otel-bridge webhooks register --domain {name}` writes it)"
    _take_secret(
        domain,
        path,
        base_dir,
        problems,
        key="webhook_secret",
        file_key="webhook_secret_file",
        required=False,
        read=read,
        missing_hint=hint if isinstance(name, str) else "",
    )


def _take_webhooks(top: dict[Any, Any], base_dir: Path | None, problems: Problems) -> None:
    """The `webhooks` section: relative paths resolved, the basic auth password file read.
    `webhooks:` with every line commented out is no section (off), like `health:`."""
    if "webhooks" not in top:
        return
    section = top["webhooks"]
    if section is None:
        del top["webhooks"]
        return
    if not isinstance(section, dict):
        return  # validation says "must be a mapping"
    section = dict(section)
    for key in ("tls_cert_file", "tls_key_file"):
        if key in section:
            section[key] = _resolve(section[key], base_dir)
    _take_secret(
        section,
        "webhooks",
        base_dir,
        problems,
        key="basic_auth_password",
        file_key="basic_auth_password_file",
        required=False,
    )
    top["webhooks"] = section


def _check_unique_names(domains: list[Any], problems: Problems) -> None:
    first: dict[str, int] = {}
    for index, domain in enumerate(domains):
        name = domain.get("name") if isinstance(domain, dict) else None
        if not isinstance(name, str):
            continue
        # Daily domains are DNS labels: case does not make two different domains.
        key = name.strip().lower()
        if key in first:
            problems.add(
                f"domains[{index}].name", f"duplicate domain {name!r} (also domains[{first[key]}])"
            )
        else:
            first[key] = index


def parse_settings(
    data: object,
    environ: Mapping[str, str] | None = None,
    source: str = "<config>",
    base_dir: Path | None = None,
    *,
    secrets: bool = True,
    webhook_secrets: bool = True,
) -> Settings:
    """Settings from an already-parsed YAML document. Raises ConfigError.

    Relative `state_path`, `api_key_file`, `ca_file` and certificate paths in the document
    resolve against `base_dir` (left relative when it is None); paths from OTEL_* variables stay
    as given, relative to the working directory like any environment path.

    `secrets=False` is for the `state` commands: they need the state store, not Daily or the
    backend, so domain API keys and every export section are neither read nor required
    (`DAILY_API_KEY` may be unset); each domain's `api_key` is then a placeholder. Nor is
    the `webhooks` section or any webhook secret.

    `webhook_secrets=False` is for `webhooks register`, which writes a domain's
    `webhook_secret_file`: the paths are resolved but not read (the file may not exist yet),
    and `webhook_secret` stays None where the secret would come from a file.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    problems = Problems()
    if data is None:
        raise ConfigError([(source, "empty configuration; at least one domain is required")])
    if not isinstance(data, dict):
        raise ConfigError([(source, "must be a mapping of settings")])
    if not secrets:
        data, env = _without_secrets(data, env)
    top: dict[Any, Any] = _expand(data, env, "", problems)
    if isinstance(top.get("state_url"), str):
        password = password_of(top["state_url"])
        problems.secret(password)
        problems.secret(unquote(password or ""))

    # Secrets first, so that every message produced below can be scrubbed of them.
    _secrets_of_headers(top.get("export"), problems)
    for domain in top.get("domains") or []:
        if isinstance(domain, dict):
            for key in ("api_key", "webhook_secret"):
                if isinstance(domain.get(key), str):
                    problems.secret(domain[key])
            _secrets_of_headers(domain.get("export"), problems)
    hooks = top.get("webhooks")
    if isinstance(hooks, dict) and isinstance(hooks.get("basic_auth_password"), str):
        problems.secret(hooks["basic_auth_password"])

    if "config_path" in top:
        problems.add("config_path", "unknown key")
        del top["config_path"]
    for section in ("health", "self_telemetry"):
        if section in top and top[section] is None:  # every line of it commented out
            del top[section]
    if "state_path" in top:
        top["state_path"] = _resolve(top["state_path"], base_dir)
    _take_webhooks(top, base_dir, problems)

    env_layer, env_provenance = env_export_layer(env, problems)
    global_yaml = _export_mapping(top.get("export"), "export", problems)
    global_yaml = {
        k: _resolve(v, base_dir) if k in _EXPORT_PATH_KEYS else v for k, v in global_yaml.items()
    }
    global_layer, global_prov, _ = _overlay(env_layer, env_provenance, global_yaml)

    def global_label(loc: tuple[int | str, ...]) -> str:
        # A bad value from an OTEL_* variable is reported under the variable's name.
        for size in (2, 1):
            if len(loc) >= size:
                var = global_prov.get(tuple(str(part) for part in loc[:size]))
                if var is not None:
                    return var
        return loc_path("export", loc)[0]

    global_export = _validate_export(global_layer, global_label, problems)
    global_ok = global_export is not None
    # A placeholder keeps validation of the rest going, so all problems are reported at once.
    top["export"] = global_export or ExportSettings()

    domains = top.get("domains")
    if "domains" in top and not domains:
        problems.add("domains", "at least one domain is required")
    if isinstance(domains, list):
        _check_unique_names(domains, problems)
        effective: list[Any] = []
        for index, raw_domain in enumerate(domains):
            if not isinstance(raw_domain, dict):
                effective.append(raw_domain)
                continue
            domain = dict(raw_domain)
            path = f"domains[{index}]"
            _take_api_key(domain, path, base_dir, problems)
            _take_webhook_secret(domain, path, base_dir, problems, read=webhook_secrets)
            if "ca_file" in domain:
                domain["ca_file"] = _resolve(domain["ca_file"], base_dir)
            for key in ("rooms", "resource_attributes", "severity_map"):
                if key in domain and domain[key] is None:
                    del domain[key]
            override = _export_mapping(domain.get("export"), f"{path}.export", problems)
            override = {
                k: _resolve(v, base_dir) if k in _EXPORT_PATH_KEYS else v
                for k, v in override.items()
            }
            layer, _, provided = _overlay(global_layer, global_prov, override)

            def domain_label(
                loc: tuple[int | str, ...],
                path: str = path,
                provided: set[tuple[Any, ...]] = provided,
            ) -> str | None:
                # An error in a value inherited from a broken global section is already
                # reported there; repeating it for every domain would only bury it.
                if loc[:2] not in provided and loc[:1] not in provided and not global_ok:
                    return None
                return loc_path(f"{path}.export", loc)[0]

            domain_export = _validate_export(layer, domain_label, problems)
            domain["export"] = domain_export or top["export"]
            effective.append(domain)
        top["domains"] = effective

    try:
        settings = Settings.model_validate(top)
    except ValidationError as exc:
        for loc, message in pydantic_problems(exc, Settings):
            problems.add(loc_path("", loc)[0] or source, message)
        problems.raise_if_any()
        # Only reachable if every error was silenced; still never leak pydantic's text.
        raise ConfigError([(source, "invalid configuration")]) from None
    problems.raise_if_any()
    return settings


_NOT_LOADED = "not-loaded-state-command"
_DOMAIN_SECRET_KEYS = frozenset(
    {"api_key", "api_key_file", "webhook_secret", "webhook_secret_file", "export"}
)


def _without_secrets(
    data: dict[Any, Any], environ: Mapping[str, str]
) -> tuple[dict[Any, Any], Mapping[str, str]]:
    top = {k: v for k, v in data.items() if k not in ("export", "webhooks")}
    domains = top.get("domains")
    if isinstance(domains, list):
        top["domains"] = [
            {
                **{k: v for k, v in d.items() if k not in _DOMAIN_SECRET_KEYS},
                "api_key": _NOT_LOADED,
            }
            if isinstance(d, dict)
            else d
            for d in domains
        ]
    return top, {k: v for k, v in environ.items() if not k.startswith(ENV_PREFIX)}


def load_settings(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    *,
    secrets: bool = True,
    webhook_secrets: bool = True,
) -> Settings:
    """Read, expand and validate the YAML config file at `path`. Raises ConfigError.
    `secrets=False`, `webhook_secrets=False`: see `parse_settings`."""
    config_path = Path(path).absolute()
    source = str(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(source, "config file not found")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(source, "config file is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError([(source, f"cannot read config file: {exc.strerror}")]) from None
    data = _load_yaml(text, source)
    settings = parse_settings(
        data,
        environ,
        source=source,
        base_dir=config_path.parent,
        secrets=secrets,
        webhook_secrets=webhook_secrets,
    )
    return settings.model_copy(update={"config_path": config_path})
