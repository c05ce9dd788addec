from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kpidash.auth import AuthSettings
from kpidash.errors import ConfigError

GOOD = "x" * 32


def test_defaults() -> None:
    s = AuthSettings(secret=GOOD)
    assert (s.issuer, s.audience, s.algorithm) == ("kpidash", "kpidash-api", "HS256")
    assert (s.access_ttl, s.refresh_ttl, s.idle_timeout) == (
        timedelta(minutes=15), timedelta(days=30), timedelta(days=7))
    assert (s.max_failures, s.failure_window) == (5, timedelta(minutes=15))


def test_the_secret_is_required() -> None:
    with pytest.raises(TypeError):
        AuthSettings()  # type: ignore[call-arg]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"secret": "x" * 31}, "at least 32 characters for HS256, got 31"),
    ({"secret": ""}, "at least 32"),
    ({"secret": "x" * 40, "algorithm": "HS512"}, "at least 64 characters for HS512"),
    ({"secret": GOOD, "algorithm": "none"}, "HS256, HS384, HS512"),
    ({"secret": GOOD, "algorithm": "RS256"}, "algorithm"),
    ({"secret": GOOD, "access_ttl": timedelta(0)}, "access_ttl must be a positive"),
    ({"secret": GOOD, "idle_timeout": 7}, "idle_timeout"),
    ({"secret": GOOD, "max_failures": 0}, "max_failures"),
    ({"secret": GOOD, "max_failures": True}, "max_failures"),
    ({"secret": GOOD, "audience": ""}, "audience"),
], ids=["short", "empty", "hs512-short", "alg-none", "asymmetric", "zero-ttl", "not-a-duration",
        "no-failures", "bool-failures", "no-audience"])
def test_bad_settings_say_what_is_wrong(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AuthSettings(**kwargs)


def test_the_error_tells_how_to_make_a_secret() -> None:
    with pytest.raises(ConfigError, match=r"secrets\.token_urlsafe"):
        AuthSettings(secret="short")
