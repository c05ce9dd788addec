"""Checks of user fields: username, display name, time zone and the profile preferences.

Each ``check_*`` returns the normalised value or raises InputError naming the field, what
was expected and what came.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from kpidash.auth.roles import Role
from kpidash.errors import InputError

THEMES = ("corporate", "dark", "light", "vibrant", "pastel")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_REFRESH_INTERVAL = 5  # seconds
MAX_NAME_LENGTH = 100

#: profile fields kept in the user's JSON doc, with their defaults
PROFILE_DEFAULTS: dict[str, Any] = {"display_name": "", "timezone": "UTC",
                                    "theme": "corporate", "refresh_interval": 60,
                                    "followed": [], "saved_filters": {}}
#: every field ``Accounts.update_user`` accepts
UPDATABLE = ("role", "disabled", *PROFILE_DEFAULTS)


def check_username(value: Any) -> str:
    if not isinstance(value, str) or not USERNAME_RE.match(value):
        raise InputError(
            f"username must be 2–63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
            f"letter or digit, got {value!r}")
    return value


def check_display_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise InputError(f"display_name must be a string of at most {MAX_NAME_LENGTH} "
                         f"characters, got {short_repr(value)}")
    return value.strip()


def check_timezone(value: Any) -> str:
    if isinstance(value, str) and value and ".." not in value and not value.startswith("/"):
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return value
    raise InputError(f"timezone must be an IANA time zone such as 'UTC' or 'Europe/Paris', "
                     f"got {short_repr(value)}")


def check_theme(value: Any, *, allow_none: bool = False, field: str = "theme") -> str | None:
    if value is None and allow_none:
        return None
    if value not in THEMES:
        raise InputError(f"{field} must be one of {', '.join(THEMES)}"
                         f"{' or null' if allow_none else ''}, got {short_repr(value)}")
    return str(value)


def check_refresh_interval(value: Any, field: str = "refresh_interval") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_REFRESH_INTERVAL:
        raise InputError(f"{field} must be a whole number of seconds ≥ {MIN_REFRESH_INTERVAL}, "
                         f"got {short_repr(value)}")
    return value


def check_str_list(value: Any, field: str) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple) \
            or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{field} must be a list of non-empty strings, got {short_repr(value)}")
    return list(value)


def check_filters(value: Any, field: str) -> dict[str, list[str]]:
    """dimension → list of values."""
    if not isinstance(value, Mapping):
        raise InputError(f"{field} must be an object of dimension → list of values, got "
                         f"{short_repr(value)}")
    out: dict[str, list[str]] = {}
    for dim, values in value.items():
        if not isinstance(dim, str) or not dim:
            raise InputError(f"{field} has a dimension that is not a non-empty string: {dim!r}")
        out[dim] = check_str_list(values, f"{field}.{dim}")
    return out


def check_profile_field(name: str, value: Any) -> Any:
    """The normalised value of one field of ``UPDATABLE``; InputError naming an unknown one."""
    match name:
        case "role":
            return str(Role.parse(value))
        case "disabled":
            if not isinstance(value, bool):
                raise InputError(f"disabled must be true or false, got {short_repr(value)}")
            return value
        case "display_name":
            return check_display_name(value)
        case "timezone":
            return check_timezone(value)
        case "theme":
            return check_theme(value)
        case "refresh_interval":
            return check_refresh_interval(value)
        case "followed":
            return list(dict.fromkeys(check_str_list(value, "followed")))
        case "saved_filters":
            if not isinstance(value, Mapping):
                raise InputError("saved_filters must be an object of KPI id → filters, got "
                                 f"{short_repr(value)}")
            out = {}
            for kpi_id, filters in value.items():
                if not isinstance(kpi_id, str) or not kpi_id:
                    raise InputError(f"saved_filters has a KPI id that is not a non-empty "
                                     f"string: {kpi_id!r}")
                out[kpi_id] = check_filters(filters, f"saved_filters.{kpi_id}")
            return out
    raise InputError(f"unknown user field {name!r}; expected one of {', '.join(UPDATABLE)}")


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
