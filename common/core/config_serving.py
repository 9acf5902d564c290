"""The predict and api settings: shards, interval adaptation, batches, the api's snapshot
refresh and memory, staleness, read-only mode and the index scheme. One group of
`common.core.config.Settings`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.core.config_section import Section


class ServingSettings(Section):
    """How forecasts are made and served."""

    # --- predict and serving -------------------------------------------------------------
    predict_shards: int = Field(
        1,
        ge=1,
        le=256,
        description="Predict shards: N scheduler jobs each forecast the locations whose id "
        "hashes to their shard, and the api reads the N snapshot parts (see docs/scale.md).",
    )
    interval_adapt_eta: float = Field(
        0.005,
        ge=0,
        le=0.1,
        description="Step of the adaptive interval offsets: each verified hour moves a "
        "horizon's p10 / p90 outward by this x (its miss share - 10%) in log units; 0 serves "
        "each version's calibrated interval unchanged.",
    )
    place_interval_eta: float = Field(
        0.02,
        ge=0,
        le=0.1,
        description="Step of each place's own interval offsets (per horizon group, added to "
        "the target's): each verified hour moves them by this x (the share of the place's "
        "forecasts of the group beyond the bound - 10%) in log units; 0 leaves every place "
        "the target's offsets alone.",
    )
    predict_batch_locations: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description="Locations one predict invocation reads, featurises and writes at a "
        "time: bounds its memory whatever the shard's size.",
    )

    # --- api -----------------------------------------------------------------------------
    api_refresh_seconds: float = Field(
        5.0, ge=0, le=3600, description="How often the api re-checks the serving snapshot."
    )
    api_parts_in_memory: int = Field(
        16,
        ge=1,
        le=256,
        description="Snapshot parts (predict shards) one api instance keeps in memory per "
        "target (each as its JSON bytes and an index); more are re-read when asked for. "
        "About 1.5 times the part's JSON: 21 MB per 10,000-location part of 14 MB.",
    )
    api_stale_after_hours: float = Field(
        3.0, gt=0, le=24 * 31, description="Snapshot age at which /health says degraded."
    )
    api_read_only: bool = Field(
        False,
        description="Serve only the dashboard and the read routes (GET); POST /v1/predict "
        "answers 403. Terraform sets it on a public api (api_public).",
    )
    aqi_scheme: Literal["us-epa", "cn-hj633"] = Field(
        "us-epa",
        description="Air-quality index the api and dashboard show: us-epa (EPA 2024) or "
        "cn-hj633 (China HJ 633-2012); see docs/aqi.md.",
    )
