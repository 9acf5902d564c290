"""The base of every group of settings (`common.core.config.Settings` combines them)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Section(BaseSettings):
    """What every group of settings shares: read from `AIRCAST_<FIELD>`, frozen."""

    model_config = SettingsConfigDict(
        env_prefix="AIRCAST_", extra="ignore", frozen=True, populate_by_name=True
    )
