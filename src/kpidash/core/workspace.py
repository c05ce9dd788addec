"""Workspace ids and settings: checked once, at the boundary, every problem reported at once.

A workspace id is a short slug (``^[a-z0-9][a-z0-9_-]{0,62}$``) that is safe in URLs, file
names and log lines. Settings are the workspace's time zone (IANA name), currency (ISO 4217
code), first month of the fiscal year (1–12), default dashboard theme and its quota overrides
(:class:`~kpidash.core.quota.QuotaLimits`; only a server administrator changes those, see
:mod:`kpidash.auth.workspaces`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kpidash.core.quota import QuotaLimits
from kpidash.core.report import ReportBuilder
from kpidash.errors import ValidationFailed

WORKSPACE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ID_RE = re.compile(WORKSPACE_ID_PATTERN)
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_FORMAT = ("workspace settings (timezone, currency, fiscal_year_start, default_theme, "
           "quotas: {max_kpis, max_points, ingest_points_per_minute})")

Theme = Literal["corporate", "dark", "light", "vibrant", "pastel"]


class WorkspaceSettings(BaseModel):
    """Settings of one workspace; every field has a default, unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    currency: str = "USD"
    fiscal_year_start: int = Field(default=1, ge=1, le=12, strict=True)
    default_theme: Theme = "corporate"
    quotas: QuotaLimits = Field(default_factory=QuotaLimits)
    """Overrides of the server's default quotas; a limit left None uses the default."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as 'UTC' or 'Europe/Paris'"
                             ) from None
        return value

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        if not _CURRENCY_RE.match(value):
            raise ValueError("expected an ISO 4217 currency code of three capital letters "
                             "such as 'USD' or 'EUR'")
        return value


def check_workspace_id(workspace_id: object) -> str:
    """The id itself if it matches WORKSPACE_ID_PATTERN; else ValidationFailed naming it."""
    if isinstance(workspace_id, str) and _ID_RE.match(workspace_id):
        return workspace_id
    rb = ReportBuilder(item_kind="workspace")
    rb.error("workspace.id", f"expected 1 to 63 lower-case letters, digits, '_' or '-' starting "
             f"with a letter or digit (got {workspace_id!r})", field="id")
    raise ValidationFailed("invalid workspace id", rb.build())


def check_workspace_name(name: object) -> str:
    """The name itself if it is a non-empty string of at most 200 characters; else
    ValidationFailed."""
    if isinstance(name, str) and name.strip() and len(name) <= 200:
        return name
    rb = ReportBuilder(item_kind="workspace")
    rb.error("workspace.name", f"expected a non-empty name of at most 200 characters (got "
             f"{name!r})", field="name")
    raise ValidationFailed("invalid workspace name", rb.build())


def validate_settings(raw: Mapping[str, Any] | None,
                      base: WorkspaceSettings | None = None) -> WorkspaceSettings:
    """Settings from ``raw`` over ``base`` (the defaults when None); fields not given keep
    their ``base`` value, and so do the quotas not named in a ``quotas`` object (a quota
    given as null goes back to the server's default). Raises ValidationFailed listing every
    bad field."""
    base = base or WorkspaceSettings()
    merged = {**base.model_dump(), **dict(raw or {})}
    given = (raw or {}).get("quotas")
    if isinstance(given, Mapping):
        merged["quotas"] = {**base.quotas.model_dump(), **given}
    try:
        return WorkspaceSettings.model_validate(merged)
    except ValidationError as exc:
        rb = ReportBuilder(item_kind="workspace")
        rb.pydantic_errors(exc, "workspace.settings", _FORMAT)
        raise ValidationFailed("invalid workspace settings", rb.build()) from None
