"""The body scrubber: request and response bodies of `GET /logs/api` entries, cleaned of
meeting tokens, secrets, passwords, keys, authorization values and anything shaped like a JWT
before they may leave the bridge (`api_logs_bodies: true`). Pure.

`core.secrets` masks the secrets the bridge *knows* (its own API key, exporter headers). This
module masks what nobody told it about, by two kinds of rule:

* **by key name**: in a JSON object, the value of a key whose name looks secret (`token`,
  `meeting_token`, `password`, `api_key`, `hmac`, `Authorization`, ... see `is_secret_key`)
  is replaced whole, whatever it holds (a string, a number, a nested object). Booleans and
  null stay: a flag such as `eject_at_token_exp` cannot be a secret, and it tells what the
  request did.
* **by value shape**, on every string, keys included, and on a body that is not JSON at all
  (`scrub_text`): JWTs (`eyJ...` segments: Daily's meeting tokens are JWTs), `Bearer` /
  `Basic` / `Token` credentials, `name=value` pairs with a secret name (query strings, form
  bodies), `"name": "value"` pairs with a secret name (JSON cut short), credentials in URLs
  (`https://user:pass@host`), PEM private keys, and long hex strings (API keys are 64 hex
  digits).

A string inside the JSON that is itself JSON (a webhook payload kept as text, say) is parsed
and scrubbed by both kinds of rule, then written back as text. Past `MAX_DEPTH` levels of
nesting the rest is scrubbed as text. The scrubber masks too much rather than too little: a
harmless value under a secret-looking name is masked as well.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from daily_otel_bridge.core.secrets import MASK

MAX_DEPTH: Final = 20

# Normalised key names (lower case, letters and digits only: `X-Api-Key` -> `xapikey`).
_SECRET_NAMES: Final = frozenset(
    {
        "auth",
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "credential",
        "credentials",
        "hmac",
        "key",
        "keys",
        "pass",
        "passphrase",
        "passwd",
        "password",
        "pin",
        "pwd",
        "secret",
        "sig",
        "signature",
        "token",
    }
)
# A name containing one of these is secret (`meeting_token`, `webhook_secret`, `passwordHash`).
_SECRET_PARTS: Final = ("token", "secret", "passw", "apikey", "privatekey", "credential")
# A name ending with one of these is secret (`api_key`, `basicAuth`, `x-hub-signature`).
_SECRET_SUFFIXES: Final = ("key", "keys", "auth", "hmac", "signature", "authorization", "pwd")

_NON_ALNUM: Final = re.compile(r"[^a-z0-9]")


def is_secret_key(name: str) -> bool:
    """Whether a value under this key name must be masked (case and separators ignored)."""
    normal = _NON_ALNUM.sub("", name.lower())
    if not normal:
        return False
    return (
        normal in _SECRET_NAMES
        or any(part in normal for part in _SECRET_PARTS)
        or normal.endswith(_SECRET_SUFFIXES)
    )


# -- value shapes -----------------------------------------------------------------------------

_B64URL = r"[A-Za-z0-9_-]"
# A JWS (three segments) or JWE (five): the header is base64url JSON, so it starts `eyJ`.
_JWT: Final = re.compile(rf"eyJ{_B64URL}*(?:\.{_B64URL}*){{2,4}}")
_AUTH_SCHEME: Final = re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=-]{4,}")
_URL_USERINFO: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@\"']+:[^/\s@\"']*@")
_PEM_PRIVATE: Final = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
    re.DOTALL,
)
_LONG_HEX: Final = re.compile(r"(?<![A-Za-z0-9])[0-9a-fA-F]{40,}(?![A-Za-z0-9])")
# `name=value` (query strings, form bodies, header-ish text) and `"name": "value"` (JSON that
# did not parse, e.g. cut short): the name decides, as for a JSON key.
# (`://` is no pair: a URL's scheme would swallow the query string behind it.)
_PAIR: Final = re.compile(r"(?i)([A-Za-z0-9_.-]+)(\s*(?:=|:(?!//))\s*)([^\s&;,\"'}<>?#]+)")
_QUOTED_PAIR: Final = re.compile(r'"([^"\\]{1,64})"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
_QUOTED_SCALAR: Final = re.compile(r'"([^"\\]{1,64})"(\s*:\s*)(-?[0-9][0-9.eE+-]*)')


def _mask_pair(match: re.Match[str]) -> str:
    name, sep, value = match.group(1), match.group(2), match.group(3)
    if not is_secret_key(name) or value == MASK:
        return match.group(0)
    return f"{name}{sep}{MASK}"


def _mask_quoted_pair(match: re.Match[str]) -> str:
    name, sep = match.group(1), match.group(2)
    if not is_secret_key(name):
        return match.group(0)
    return f'"{name}"{sep}"{MASK}"'


def scrub_text(text: str) -> str:
    """The value rules, on any text (a string inside JSON, or a body that is not JSON)."""
    text = _PEM_PRIVATE.sub(MASK, text)
    text = _JWT.sub(MASK, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _QUOTED_PAIR.sub(_mask_quoted_pair, text)
    text = _QUOTED_SCALAR.sub(_mask_quoted_pair, text)
    text = _PAIR.sub(_mask_pair, text)
    return _LONG_HEX.sub(MASK, text)


# -- JSON -------------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _maybe_json(text: str) -> Any:
    """The value a string holds when it is a JSON object or array; None otherwise."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def scrub_json(value: Any, depth: int = 0) -> Any:
    """Both kinds of rule over a decoded JSON value; a new value, the input is not changed."""
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        try:
            return scrub_text(_dumps(value))
        except (ValueError, RecursionError):
            return MASK
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            name = str(key)
            if is_secret_key(name) and child is not None and not isinstance(child, bool):
                out[scrub_text(name)] = MASK
            else:
                out[scrub_text(name)] = scrub_json(child, depth + 1)
        return out
    if isinstance(value, list):
        return [scrub_json(child, depth + 1) for child in value]
    if isinstance(value, str):
        inner = _maybe_json(value)
        if inner is not None:
            return _dumps(scrub_json(inner, depth + 1))
        return scrub_text(value)
    return value


def scrub_body(body: object) -> str | None:
    """A `/logs/api` body (Daily sends "a JSON string") as scrubbed JSON text; a body that
    does not parse is scrubbed as text; None stays None. Any other JSON value Daily might
    send instead of a string (an object, say) is scrubbed the same way."""
    if body is None:
        return None
    if not isinstance(body, str):
        return _dumps(scrub_json(body))
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return scrub_text(body)
    # A JSON string literal (a body encoded twice) goes through `scrub_json` too, which
    # parses its content again when that is JSON.
    return _dumps(scrub_json(decoded))
