"""The predict function's answer, one model per part: what each target's run did (its model
version, counts, interval offsets, combination weights and each shard's published snapshot
part) and the locations skipped. `run_job` checks the answer against `PredictAnswer` before
the run is recorded, and the function's /openapi.json documents it from the same model."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from common.runtime.runs import RunAnswer


class Published(BaseModel):
    """What publishing one document did: written (key, bytes), or not because a newer
    issue time is served there (`reason`)."""

    model_config = ConfigDict(extra="forbid")

    written: bool
    key: str | None = None
    bytes: int | None = None
    reason: str | None = None
    stale: int | None = Field(
        None, description="Locations carried over from the served part (no forecast now)."
    )
    replaced: str | None = Field(
        None, description="What was replaced and why (unreadable, or dated after now)."
    )


class IntervalsAnswer(BaseModel):
    """The target's adaptive interval offsets after this run's step, and their publishing."""

    model_config = ConfigDict(extra="forbid")

    lower: list[float]
    upper: list[float]
    verified_through: dt.datetime | None = None
    published: Published


class CombinationAnswer(BaseModel):
    """The weights of the served median's experts at each horizon after this run's step
    (`common.forecasting.combination`)."""

    model_config = ConfigDict(extra="forbid")

    experts: list[str]
    weights: list[list[float]] = Field(description="Per horizon 1..H, one weight per expert.")
    verified_through: dt.datetime | None = None


class TargetPrediction(BaseModel):
    """One target's part: forecast by its production model, or `skipped` with the reason
    (no model in production yet)."""

    model_config = ConfigDict(extra="forbid")

    model_version: str | None = None
    counts: dict[str, int] | None = None
    intervals: IntervalsAnswer | None = None
    combination: CombinationAnswer | None = None
    snapshot: dict[str, Published] | None = Field(
        None, description="Each shard's snapshot part, by shard number ('0' when unsharded)."
    )
    skipped: str | None = None


class SkippedForecast(BaseModel):
    location_id: str
    target: str
    reason: str


class PredictAnswer(RunAnswer):
    """The predict function's answer: each target's part (`targets`); at the top level the
    first target's model version and horizon, the issue time, the locations skipped and
    the seconds per stage."""

    model_version: str | None = None
    shards: int | None = None
    issued_at: dt.datetime | None = None
    horizon: int | None = None
    skipped: list[SkippedForecast] | None = None
    targets: dict[str, TargetPrediction] | None = None
    timings: dict[str, float] | None = None
    shards_run: list[int] | None = None
