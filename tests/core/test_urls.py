"""Redacting passwords out of service URLs before anything shows them."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.urls import redacted_url, url_scheme


@pytest.mark.parametrize("url, shown", [
    ("postgresql://ops:pw@db:5432/peakops", "postgresql://ops:***@db:5432/peakops"),
    ("postgresql://ops@db/peakops", "postgresql://ops@db/peakops"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("postgresql://db/x?user=ops&password=pw", "postgresql://db/x?user=ops&password=***"),
    ("postgresql://u:p%40ss@[::1]:5432/x", "postgresql://u:***@[::1]:5432/x"),
    ("sqlite:////var/lib/peakops/peakops.db", "sqlite:////var/lib/peakops/peakops.db"),
    ("redis://:pw@cache:notaport/0", "***"),
    (None, None),
])
def test_redacted_url(url, shown):
    assert redacted_url(url) == shown


def test_endpoint_form_drops_user_and_query():
    assert redacted_url("https://user:secret@minio.local:9000/?token=x", keep_user=False) == \
        "https://minio.local:9000"


@given(user=st.text("abcdefgh", min_size=1, max_size=8),
       password=st.text("ABCDEFGHIJKLMNOP0123456789!$&()*+,;=", min_size=6, max_size=20))
def test_no_password_survives(user, password):
    for url in (f"postgresql://{user}:{password}@db:5432/x",
                f"postgresql://db/x?password={quote(password, safe='')}"):
        shown = redacted_url(url)
        assert password not in shown and quote(password, safe="") not in shown


def test_url_scheme():
    assert url_scheme("PostgreSQL://h/db") == "postgresql" and url_scheme(None) is None
