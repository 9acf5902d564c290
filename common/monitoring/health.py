"""The pipeline's health as the monitor stores it (health/status.json) and the api, the
dashboard and `aircast status` read it: one model per document, the one source of truth.

`common.monitoring.status` builds every condition as a `HealthCondition` and publishes a
`PipelineStatus`; the api validates what it reads with the same models (and documents
them in /openapi.json). Versioned like the serving snapshot (`schema_version`; a status
stored before the field existed reads as version 1). A condition carries the common
fields and the details of its kind (which are set depends on the condition); each is
written only when set, so a stored status reads back key for key.

Light on purpose (pydantic only): the api imports it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from common.core.timeutil import parse_time

SCHEMA_VERSION = 1

State = Literal["ok", "warn", "alert"]
STATES: tuple[State, ...] = ("ok", "warn", "alert")  # in order of severity
Time = Annotated[dt.datetime, BeforeValidator(parse_time)]
Number = int | float  # a level as configured (3 stays 3 in the stored JSON)


class Part(BaseModel):
    """A stored part: unknown keys kept (a newer monitor's), only set keys written."""

    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class LateLocation(Part):
    """freshness: an active location more than the warn level behind."""

    location_id: str
    source: str | None = None
    newest: Time | None = None
    lag_h: float | None = None


class FunctionRuns(Part):
    """runs: one function's runs in the window."""

    runs: int
    failed: int
    lost: int
    unrecovered: int
    last_success: Time | None = None
    hours_since_success: float | None = None


class SourceRejections(Part):
    """rejected_share: one source's rows in the window."""

    rejected: int
    accepted: int
    share: float | None = None
    reasons: dict[str, int] = Field(default_factory=dict)
    enough: bool = False  # enough rows for the share to count
    running: int = 0  # the source's ingest runs still running: counted once they end


class CamsComparison(Part):
    """aircast vs the CAMS forecast on the rows that have one (it informs; the state is
    decided against persistence)."""

    n: int
    mae: float | None = None
    model_mae: float | None = None
    ratio: float | None = None


class GroupAccuracy(Part):
    n: int
    mae: float | None = None
    persistence_mae: float | None = None
    cams: CamsComparison | None = None


class VersionAccuracy(Part):
    """accuracy: one model version's verified forecasts in the window."""

    n: int
    mae: float | None = None
    persistence_mae: float | None = None
    ratio: float | None = None
    coverage: float | None = None
    cams: CamsComparison | None = None
    horizons: dict[str, GroupAccuracy] = Field(default_factory=dict)


class PlaceWeightsSummary(Part):
    """accuracy: the places' own weights served now in one horizon group: how many places
    have them, how many each expert leads (has the largest weight), and the model's
    weight across them (min, mean, max); their own interval offsets (the mean lower and
    upper, log units, and how many places have one at the clip, +-1)."""

    places: int
    leading: dict[str, int] = Field(default_factory=dict)
    model_weight: dict[str, float | None] = Field(default_factory=dict)
    band_offsets: dict[str, float | int | None] = Field(default_factory=dict)


class ServedAccuracy(Part):
    """accuracy: one target's production version as served (the model combined with the
    baselines), the model's own ratio and the weights beside it (the network's, and a
    summary of the places' own), the forecasts of places served the network's weights
    (none of their own when issued) apart."""

    target: str
    version: str
    n: int
    mae: float | None = None
    persistence_mae: float | None = None
    ratio: float | None = None
    coverage: float | None = None
    model_ratio: float | None = None
    horizons: dict[str, dict[str, float | int | None]] = Field(default_factory=dict)
    # the gate's horizon groups where the version was served as persistence from its
    # first hour (its metadata's `served_as_persistence`; `weights` says if it still is)
    served_as_persistence: list[str] | None = None
    new_places: dict[str, float | int | None] | None = None
    weights: dict[str, dict[str, float | None]] | None = None
    place_weights: dict[str, PlaceWeightsSummary] | None = None


class TargetState(Part):
    """A per-model condition's verdict for one forecast target."""

    state: State
    value: float | None = None
    detail: str


class HealthCondition(Part):
    """One condition: ok | warn | alert, why, and the numbers it was decided on."""

    name: str
    state: State
    detail: str
    value: float | None = None
    unit: str | None = None
    warn: Number | None = None
    alert: Number | None = None
    # freshness
    locations: list[LateLocation] | None = None
    # runs
    functions: dict[str, FunctionRuns] | None = None
    # model_age, drift: the production version checked
    version: str | None = None
    promoted_at: Time | None = None
    # rejected_share
    sources: dict[str, SourceRejections] | None = None
    # accuracy: what is judged (each target's production version as served), and every
    # version's record; `history` names the earlier versions in the window
    served: list[ServedAccuracy] | None = None
    versions: dict[str, VersionAccuracy] | None = None
    history: list[str] | None = None
    # drift
    psi: dict[str, float] | None = None
    adversarial_auc: float | None = None
    reference: str | None = Field(None, description="What the inputs were compared with.")
    # snapshot
    issued_at: Time | None = None
    # a per-model condition over several targets: the worst one, and each
    target: str | None = None
    targets: dict[str, TargetState] | None = None


class PipelineStatus(Part):
    """The pipeline's health as the monitor last evaluated and stored it (health/status.json)."""

    schema_version: int = SCHEMA_VERSION
    status: State
    as_of: Time
    conditions: list[HealthCondition]

    def to_json(self) -> dict[str, Any]:
        """As stored: the version always written, each condition's set keys."""
        return {"schema_version": self.schema_version, **super().to_json()}

    def states(self) -> dict[str, State]:
        """Each condition's state, by name."""
        return {c.name: c.state for c in self.conditions}


def worst(states: list[State]) -> State:
    """The most severe of `states` ("ok" for none)."""
    return max(states, key=STATES.index, default="ok")
