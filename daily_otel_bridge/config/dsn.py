"""PostgreSQL connection URLs in messages: never the password (pure string handling)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***, for logs and check-config."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"postgresql://{MASK}"
    if parts.password is None:
        # A password may also hide in the query string (?password=...).
        if "password" in parts.query.lower():
            return urlunsplit(parts._replace(query=MASK))
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    query = MASK if "password" in parts.query.lower() else parts.query
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}", query=query))


def describe_target(url: str) -> str:
    """host:port/database of a URL, without user, password or options, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    host = parts.netloc.rpartition("@")[2] or "localhost"
    return f"{host}{parts.path or ''}"
