"""Configuration, read late (never at import time) from KPIDASH_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
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
    dask_scheduler: str | None = Field(
        default=None, description="Dask scheduler address (tcp://host:8786) that forecasting, "
        "anomaly scoring and slice insights of many series run on; unset = this process")
    dask_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="longest a distributed run may take before it is "
        "cancelled with an error (a cluster without workers would otherwise wait)")
    # -- the API server ----------------------------------------------------------------------
    mode: Literal["production", "dev", "demo"] = Field(
        default="production", description="production refuses to start without a secret")
    secret: SecretStr | None = Field(
        default=None, description="token signing key (≥ 32 characters); no default")
    host: str = Field(default="127.0.0.1", description="address the server listens on")
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=1, ge=1, le=64, description="server processes; more than one needs a "
        "PostgreSQL store (they share it, and one of them runs the alert ticks)")
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="largest JSON or line-protocol body")
    max_upload_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="largest CSV/Parquet upload")
    access_ttl_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_ttl_days: int = Field(default=30, ge=1, le=365)
    session_idle_days: int = Field(default=7, ge=1, le=365)
    refresh_tick_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often the background refresher looks")
    alert_interval_seconds: float = Field(
        default=60.0, ge=1, description="how often the alert manager ticks in the server")
    # -- quotas per workspace (a workspace's settings may override each; unset = unlimited) --
    quota_max_kpis: int | None = Field(
        default=None, gt=0, description="KPI definitions a workspace may hold")
    quota_max_points: int | None = Field(
        default=None, gt=0, description="raw points a workspace may store")
    quota_ingest_points_per_minute: int | None = Field(
        default=None, gt=0, description="points a workspace may ingest per minute")

    @field_validator("timezone", "input_timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from kpidash.core.aggregate import check_timezone

        check_timezone(v)
        return v
