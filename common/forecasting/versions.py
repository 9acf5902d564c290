"""The documents of the model registry: what a version says about itself (`metadata.json`,
with its gate decision, tuning choice and drift reference), the production pointer
(`production.json`) and the stored tuning (`tuning.json`).

Train writes them; predict, the monitor (model age, drift), the api (`/v1/models/current`,
online forecasts) and train itself (a re-run, the production model) read them. Each is one
pydantic model here, versioned like the serving snapshot (`schema_version`; a document
written before the field existed reads as version 1), so a renamed key fails the type
checker and the contract test (tests/test_contracts.py reads documents written
by earlier code) rather than another function in production.

Readers keep what they do not know (`extra="allow"`): a version written by newer code
loads, and a re-run that records its gate decision keeps every key. The type checker's
pydantic plugin still refuses an unknown keyword where a writer builds one.

Light on purpose (pydantic only): the api reads the pointer and the metadata.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from common.core.timeutil import parse_time

if TYPE_CHECKING:
    from common.forecasting.features import FeatureSpec

SCHEMA_VERSION = 1
METADATA_FILE = "metadata.json"
POINTER_FILE = "production.json"
TUNING_FILE = "tuning.json"

# A stored time: ISO-8601 with Z or an offset, read as aware UTC; written as ...Z.
Time = Annotated[dt.datetime, BeforeValidator(parse_time)]
Span = tuple[Time, Time]  # [first, last] of a window


class Document(BaseModel):
    """A stored document: unknown keys kept (a newer writer's), round-tripped as read."""

    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        """The document as stored (JSON types; None kept: a reader sees every key)."""
        return self.model_dump(mode="json")


def version_prefix(model_name: str) -> str:
    """models/<model_name>: every key of a model's registry is under it."""
    return f"models/{model_name}"


def version_key(model_name: str, version: str, file: str) -> str:
    """models/<model_name>/<version>/<file>: one file of a version."""
    return f"{version_prefix(model_name)}/{version}/{file}"


def pointer_key(model_name: str) -> str:
    """models/<model_name>/production.json: the production pointer."""
    return f"{version_prefix(model_name)}/{POINTER_FILE}"


# -- the drift reference --------------------------------------------------------------------
class ColumnBins(Document):
    """Decile bins of one input over the reference rows (common.monitoring.drift)."""

    cuts: list[float]
    n: int
    shares: list[float]


DriftReference = dict[str, ColumnBins]  # input column -> its bins


class DriftReferences(Document):
    """Decile bins of every input over the training window and of each calendar month of
    it (1..12, months with enough rows): what drift is measured against."""

    reference: DriftReference = Field(default_factory=dict)
    reference_by_month: dict[int, DriftReference] = Field(default_factory=dict)


class NaturalSpread(Document):
    """How far the training window's own weeks are from the window (PSI): the quantile the
    warn level rises to and the largest, the alert level's."""

    quantile: float
    max: float


# -- metrics --------------------------------------------------------------------------------
class Scores(Document):
    mae: float
    rmse: float


class ModelScores(Scores):
    coverage: float  # share of actuals inside [p10, p90]


class CamsScores(Document):
    """CAMS's MAE and the model's on the rows with a CAMS forecast (MAEs None when none)."""

    n: int
    mae: float | None = None
    model_mae: float | None = None


class HorizonScores(Document):
    horizon_h: int
    n: int
    mae: float
    rmse: float
    coverage: float | None = None
    persistence_mae: float | None = None
    persistence_rmse: float | None = None
    seasonal_naive_mae: float | None = None
    seasonal_naive_rmse: float | None = None
    cams_n: int | None = None
    cams_mae: float | None = None
    cams_model_mae: float | None = None


class GroupScores(Document):
    """Model and persistence MAE over one horizon group ("1-3", "4-12", "13-24")."""

    group: str
    n: int
    mae: float
    persistence_mae: float


class HoldoutMetrics(Document):
    """`common.forecasting.evaluation.evaluate` on the holdout: the model and the baselines."""

    rows: int
    model: ModelScores
    persistence: Scores
    seasonal_naive: Scores
    cams: CamsScores | None = None  # where the holdout rows carry the CAMS forecast
    by_horizon: list[HorizonScores] = []
    mae_by_location: dict[str, float] = Field(default_factory=dict)
    # The horizon groups where the version, replayed from its calibration weights, lost to
    # persistence (those scores): it is served as persistence there from its first hour
    # (`common.train.candidate`), and the scores above are of that forecast.
    served_as_persistence: list[GroupScores] = []


class Metrics(Document):
    holdout: HoldoutMetrics


class BacktestFold(Document):
    """One rolling-origin fold before the holdout; `skipped` says why one has no scores."""

    origin: Time
    skipped: str | None = None
    rows: int | None = None  # test rows
    fit_rows: int | None = None  # rows refitted on (none in versions before it was kept)
    mae: float | None = None
    rmse: float | None = None
    coverage: float | None = None
    persistence_mae: float | None = None
    seasonal_naive_mae: float | None = None
    ratio_persistence: float | None = None


# -- the gate decision ----------------------------------------------------------------------
class NoiseRecord(Document):
    """Bootstrap interval of MAE(candidate) - MAE(production) on the same rows."""

    difference: float
    low: float
    high: float
    confidence: float
    samples: int
    blocks: int
    method: str = "block bootstrap over issue days of paired absolute errors"


Verdict = Literal["promote", "reject", "keep production"]


class GateRecord(Document):
    """The gate's decision as recorded in the version's metadata and the run's answer."""

    promote: bool
    verdict: Verdict | None = None  # None: recorded before verdicts were
    reasons: list[str] = []
    production_before: str | None = None
    production_mae: float | None = None
    persistence_by_group: list[GroupScores] = []
    noise: NoiseRecord | None = None
    production_age_days: float | None = None
    # The groups served as persistence from the start, with their scores before (from the
    # holdout metrics' `served_as_persistence`).
    served_as_persistence: list[GroupScores] = []


# -- the tuning choice ----------------------------------------------------------------------
class TuneBudgetRecord(Document):
    seconds: float
    max_trials: int
    max_rows: int


class TuningChoice(Document):
    """A bounded search's answer (models/<name>/tuning.json; common.train.tuning), recorded
    in every version fitted with it."""

    params: dict[str, int | float]  # the searched parameters (ints stay ints: the version id
    # hashes them, and xgboost wants an integer depth)
    objective: str
    best_value: float
    default_value: float | None = None
    trials: int
    stopped_by: Literal["trials", "time"]
    budget: TuneBudgetRecord
    seconds: float
    folds: list[Span] = []
    data_end: Time
    as_of: Time  # the train run's, with `fingerprint`: a re-run does not search again
    fingerprint: str


# -- the version ----------------------------------------------------------------------------
class StoredSpec(Document):
    """The `common.forecasting.features.FeatureSpec` a version was fitted with; a field an
    older version lacks takes the spec's default (`ModelMetadata.feature_spec`)."""

    target: str
    horizon: int
    future_weather: bool
    weather: str | None = None  # training's target-hour weather: as issued, or observed
    cams: bool | None = None  # reads the CAMS forecast of the target


class WeatherCard(Document):
    """Which weather a version trained on: the mode, a note, and the share of its holdout
    rows by the kind of weather placed there."""

    trained_on: str
    note: str
    kinds: dict[str, float] | None = None


class CamsInput(Document):
    """Whether a version reads the CAMS forecast, and why (or why not)."""

    used: bool
    reason: str | None = None


class ModelState(Document):
    """`ForecastModel.state()`: its own record (quantiles, shifts, shrinkage, ...), read back
    only by `ForecastModel.from_files`; the registry needs the file names."""

    files: dict[str, str]  # quantile -> file of the version


class DataRecord(Document):
    window: Span  # observations with ts in (window[0], window[1]]
    observations: int
    locations: int
    fingerprint: str
    blocks: dict[str, Span] = Field(default_factory=dict)  # fit/validation/calibration
    holdout: Span | None = None


class ModelMetadata(DriftReferences):
    """models/<name>/<version>/metadata.json, written last: its presence marks a version."""

    schema_version: int = SCHEMA_VERSION
    model_name: str
    version: str
    created_at: Time
    run_id: str
    code_version: str
    target: str
    horizon: int
    spec: StoredSpec
    features: list[str]
    weather: WeatherCard | str  # a note, in versions written before the card
    cams_input: CamsInput | None = None
    params: dict[str, Any]  # xgboost's parameters as fitted: its vocabulary, passed through
    tuning: TuningChoice | None = None
    model: ModelState
    data: DataRecord
    rows: dict[str, int]  # fit, validation, calibration, holdout
    metrics: Metrics
    baselines: dict[str, Scores | CamsScores | None] = Field(default_factory=dict)
    backtest: list[BacktestFold] = []
    # reference, reference_by_month (DriftReferences), and the window's own weeks' PSI from
    # them, per input: what the drift levels rise to.
    reference_natural: dict[str, NaturalSpread] = Field(default_factory=dict)
    gate: GateRecord | None = None  # None only between the first write and the decision

    @property
    def trained_through(self) -> dt.datetime:
        """The training cut-off (the end of its data window): what the monitor's model_age
        counts from and the gate's freshness rule compares."""
        return self.data.window[1]

    def feature_spec(self) -> FeatureSpec:
        """The spec as the feature code takes it (imported here only when asked: the api
        reads metadata without the feature code)."""
        from common.forecasting.features import FeatureSpec

        return FeatureSpec(**self.spec.model_dump(exclude_none=True))


class ProductionPointer(Document):
    """models/<name>/production.json: the promoted version, moved by compare-and-swap."""

    version: str
    promoted_at: Time | None = None
    run_id: str | None = None
    mae: float | None = None  # the version's holdout MAE when promoted
