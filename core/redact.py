"""Credentials out of everything PeakOps writes: logs, messages, events.

botocore's debug output carries the request headers (``Authorization`` with
``Credential=AKIA...``, ``X-Amz-Security-Token``), presigned query strings and, when an
endpoint URL holds ``user:password@``, the password. :func:`redact` removes those from a
line of text; :class:`RedactingFormatter` applies it to every record a handler writes, at
every level, traceback included; :func:`install` puts it on handlers an entry point made.
Secrets known by value (``register``, the AWS_* variables) are removed wherever they
appear, since a credential can turn up in a form no pattern anticipates.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from core.urls import redacted_url

MASK = "***"

_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_ACCESS_KEY_ID")

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # An Authorization header value (``AWS4-HMAC-SHA256 Credential=AKIA..., Signature=...``)
    # up to its closing quote or the end of the line, as botocore's dict reprs show it.
    (re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*b?['"]?)[^'"\r\n]+"""), r"\1" + MASK),
    # Token and secret values: headers (``'X-Amz-Security-Token': b'...'``), canonical
    # requests (``x-amz-security-token:...``), presigned query strings, config dumps.
    (re.compile(r"""(?i)((?:x-amz-security-token|x-amz-credential|x-amz-signature|"""
                r"""aws_session_token|aws_security_token|aws_secret_access_key|"""
                r"""secret_?access_?key|session_?token)['"]?\s*[:=]\s*b?['"]?)"""
                r"""[^'"\s&,;}]+"""), r"\1" + MASK),
    # ``Credential=AKIA.../date/region/service/aws4_request`` and signatures anywhere.
    (re.compile(r"(?i)\b(Credential=)[^,\s'\"&]+"), r"\1" + MASK),
    (re.compile(r"(?i)\b(Signature=)[0-9a-f]{16,}"), r"\1" + MASK),
    # Access key ids stand out by their prefix wherever they are.
    (re.compile(r"\b(AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA|ABIA|ACCA)[A-Z0-9]{12,}\b"),
     r"\1" + MASK),
    # Passwords in URLs: scheme://user:password@host -> scheme://user:***@host.
    (re.compile(r"""(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:'"]*:)[^\s/@'"]*@"""),
     r"\1" + MASK + "@"),
]

_known: set[str] = set()
_known_lock = threading.Lock()

MIN_SECRET_CHARS = 8
"""Shorter values (test dummies like ``testing``) would mask ordinary words."""


def register(*secrets: str | None) -> None:
    """Remember secret values, to be masked wherever they appear."""
    with _known_lock:
        _known.update(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)


def register_environment(env: Mapping[str, str] | None = None) -> None:
    """Remember the AWS credentials set in the environment, and URL passwords in it."""
    env = os.environ if env is None else env
    register(*(env.get(name) for name in _ENV_SECRETS))
    register(*(url_password(value) for value in env.values() if "://" in value))


def url_password(url: str | None) -> str | None:
    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


def redact(text: str) -> str:
    """``text`` with credentials, tokens and URL passwords masked."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def safe_endpoint(url: str | None, default: str = "AWS") -> str:
    """An endpoint URL without any user:password part, for messages."""
    return redacted_url(url, keep_user=False) or default


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter; what it returns, traceback included, passes through redact()."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def install(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put a RedactingFormatter on ``handlers`` (default: the root logger's)."""
    for handler in list(handlers if handlers is not None else logging.getLogger().handlers):
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def protect(*urls: str | None) -> None:
    """For an entry point, after its handlers exist: mask the environment's AWS
    credentials and the passwords of ``urls`` in every log line and uncaught traceback."""
    register_environment()
    register(*(url_password(url) for url in urls))
    install()
    install_excepthooks()


def install_excepthooks() -> None:
    """Uncaught tracebacks (main and threads) are written redacted too."""
    import traceback

    def write(kind, value, tb) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = write
    threading.excepthook = lambda args: write(args.exc_type, args.exc_value,
                                              args.exc_traceback)
