"""Configuration, read late (never at import time) from KPIDASH_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kpidash.model import DEFAULT_WORKSPACE


class Settings(BaseSettings):
    """kpidash settings. Every field can be set as ``KPIDASH_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="KPIDASH_", extra="forbid")

    db: str = Field(default="./kpidash.duckdb",
                    description="store URL or DuckDB path; ':memory:' for a throwaway store")
    timezone: str = Field(default="UTC", description="time zone of periods (day, week …)")
    input_timezone: str | None = Field(
        default=None, description="zone assumed for timestamps without offset; unset = reject")
    workspace: str = Field(default=DEFAULT_WORKSPACE, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    kpis: Path | None = Field(default=None, description="YAML file of KPI definitions to load")
    chunk_rows: int = Field(default=1_000_000, ge=1_000, description="rows per ingest chunk")
    channels: Path | None = Field(
        default=None, description="YAML file of notification channels (webhook, email, log …)")
    public_url: str | None = Field(
        default=None, description="the dashboard's address, linked from notifications")

    @field_validator("timezone", "input_timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from kpidash.core.aggregate import check_timezone

        check_timezone(v)
        return v
