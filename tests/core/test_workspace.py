"""Workspace ids and settings: defaults, every bad field reported by name."""

from __future__ import annotations

from typing import Any

import pytest

from kpidash.core.workspace import (
    WorkspaceSettings,
    check_workspace_id,
    check_workspace_name,
    validate_settings,
)
from kpidash.errors import ValidationFailed


def test_defaults() -> None:
    assert validate_settings(None).model_dump() == {
        "timezone": "UTC", "currency": "USD", "fiscal_year_start": 1,
        "default_theme": "corporate",
        "quotas": {"max_kpis": None, "max_points": None, "ingest_points_per_minute": None}}


def test_quotas_not_named_keep_their_value_and_null_resets_one() -> None:
    base = validate_settings({"quotas": {"max_kpis": 10, "max_points": 1000}})
    got = validate_settings({"quotas": {"max_points": None, "ingest_points_per_minute": 60}},
                            base)
    assert got.quotas.model_dump() == {"max_kpis": 10, "max_points": None,
                                       "ingest_points_per_minute": 60}
    assert validate_settings({"currency": "EUR"}, base).quotas == base.quotas


def test_given_fields_replace_those_of_the_base() -> None:
    base = WorkspaceSettings(timezone="Europe/Paris", currency="EUR")
    got = validate_settings({"fiscal_year_start": 4}, base)
    assert (got.timezone, got.currency, got.fiscal_year_start) == ("Europe/Paris", "EUR", 4)


@pytest.mark.parametrize(("raw", "fields"), [
    ({"timezone": "Mars/Olympus"}, ["timezone"]),
    ({"timezone": ""}, ["timezone"]),
    ({"currency": "usd"}, ["currency"]),
    ({"currency": "EURO"}, ["currency"]),
    ({"fiscal_year_start": 0}, ["fiscal_year_start"]),
    ({"fiscal_year_start": 13}, ["fiscal_year_start"]),
    ({"fiscal_year_start": "4"}, ["fiscal_year_start"]),
    ({"default_theme": "neon"}, ["default_theme"]),
    ({"colour": "red"}, ["colour"]),
    ({"currency": "x", "default_theme": "neon"}, ["currency", "default_theme"]),
    ({"quotas": {"max_kpis": 0}}, ["quotas.max_kpis"]),
    ({"quotas": {"max_points": -5}}, ["quotas.max_points"]),
    ({"quotas": {"ingest_points_per_minute": "60"}}, ["quotas.ingest_points_per_minute"]),
    ({"quotas": {"max_kpis": True}}, ["quotas.max_kpis"]),
    ({"quotas": {"max_kpis": 1.5}}, ["quotas.max_kpis"]),
    ({"quotas": {"max_series": 3}}, ["quotas.max_series"]),
    ({"quotas": 5}, ["quotas"]),
], ids=["zone", "empty-zone", "lower-currency", "long-currency", "month-0", "month-13",
        "month-text", "theme", "unknown-field", "all-at-once", "quota-0", "quota-negative",
        "quota-text", "quota-bool", "quota-fraction", "quota-unknown", "quotas-not-object"])
def test_bad_settings_name_every_field(raw: dict[str, Any], fields: list[str]) -> None:
    with pytest.raises(ValidationFailed) as exc:
        validate_settings(raw)
    assert sorted(str(i.location.field) for i in exc.value.report.errors) == fields
    assert all(i.code.startswith("workspace.settings.") for i in exc.value.report.errors)


@pytest.mark.parametrize("good", ["default", "acme", "a", "client-7_eu", "0" * 63])
def test_good_ids(good: str) -> None:
    assert check_workspace_id(good) == good


@pytest.mark.parametrize("bad", ["", "Acme", "-acme", "_a", "a b", "a/b", "é", "0" * 64, None, 7])
def test_bad_ids(bad: object) -> None:
    with pytest.raises(ValidationFailed) as exc:
        check_workspace_id(bad)
    assert exc.value.report.errors[0].location.field == "id"


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201, None])
def test_bad_names(bad: object) -> None:
    with pytest.raises(ValidationFailed):
        check_workspace_name(bad)
