from __future__ import annotations

from typing import Any

import pytest

from kpidash.auth.profiles import check_profile_field, check_timezone, check_username
from kpidash.errors import InputError


@pytest.mark.parametrize("name", ["ana", "a1", "ana.b-c_d", "0x", "a" * 63])
def test_good_usernames(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize("name", ["a", "Ana", "-ana", ".ana", "ana b", "a" * 64, "", None,
                                  "anä"])
def test_bad_usernames(name: Any) -> None:
    with pytest.raises(InputError, match="username must be"):
        check_username(name)


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
def test_good_timezones(tz: str) -> None:
    assert check_timezone(tz) == tz


@pytest.mark.parametrize("tz", ["", "Mars/Olympus", "../../etc/passwd", "/etc/localtime", 3,
                                None])
def test_bad_timezones(tz: Any) -> None:
    with pytest.raises(InputError, match="IANA time zone"):
        check_timezone(tz)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("role", "admin", "admin"),
    ("disabled", True, True),
    ("display_name", "  Ana  ", "Ana"),
    ("theme", "pastel", "pastel"),
    ("refresh_interval", 5, 5),
    ("followed", ("mrr", "churn", "mrr"), ["mrr", "churn"]),
    ("saved_filters", {"mrr": {"region": ["EU", "NA"]}}, {"mrr": {"region": ["EU", "NA"]}}),
    ("saved_filters", {}, {}),
], ids=lambda v: str(v)[:20])
def test_profile_fields_are_normalised(field: str, value: Any, expected: Any) -> None:
    assert check_profile_field(field, value) == expected


@pytest.mark.parametrize(("field", "value", "match"), [
    ("role", "root", "role must be one of"),
    ("disabled", "yes", "disabled must be true or false"),
    ("display_name", "x" * 101, "display_name must be"),
    ("display_name", 3, "display_name must be"),
    ("theme", "neon", "theme must be one of corporate, dark, light, vibrant, pastel"),
    ("refresh_interval", 4, "refresh_interval must be .* ≥ 5"),
    ("refresh_interval", True, "refresh_interval"),
    ("refresh_interval", 10.0, "refresh_interval"),
    ("followed", "mrr", "followed must be a list"),
    ("followed", ["mrr", ""], "followed must be a list of non-empty strings"),
    ("saved_filters", [], "saved_filters must be an object"),
    ("saved_filters", {"mrr": ["EU"]}, "saved_filters.mrr must be an object"),
    ("saved_filters", {"mrr": {"region": "EU"}}, "saved_filters.mrr.region must be a list"),
    ("saved_filters", {"mrr": {"region": [1]}}, "saved_filters.mrr.region"),
    ("colour", "red", "unknown user field 'colour'"),
], ids=lambda v: str(v)[:24])
def test_profile_errors_name_the_field(field: str, value: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_profile_field(field, value)
