"""Service URLs that may carry a password, and their redacted form for anything shown.

A database or queue URL (``postgresql://user:pass@host/db``, ``redis://:pass@host:6379/0``)
holds a secret. Logs, ``doctor``, the database and the console only ever see
:func:`redacted_url`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"

_SECRET_QUERY_KEYS = {"password", "pass", "passwd", "pwd", "sslpassword", "token", "secret"}


def redacted_url(url: str | None, *, keep_user: bool = True) -> str | None:
    """``url`` with its password (and password-like query values) replaced by ``***``.

    ``keep_user=False`` drops the whole ``user:password@`` part and the query, for
    endpoints where the user name is not worth showing either. A URL that cannot be
    parsed is shown as ``***`` rather than risk printing it.
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        if not keep_user:
            return f"{parts.scheme}://{host}{parts.path}".rstrip("/")
        user = parts.username
        if parts.password is not None:
            host = f"{user or ''}:{MASK}@{host}"
        elif user:
            host = f"{user}@{host}"
        query = urlencode([(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v)
                           for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                          safe="*")
        return f"{parts.scheme}://{host}{parts.path}" + (f"?{query}" if query else "")
    except ValueError:
        return MASK


def url_scheme(url: str | None) -> str | None:
    """The scheme of ``url`` in lower case (``postgresql``, ``redis``, ``sqlite``), if any."""
    return urlsplit(url).scheme.lower() if url else None
