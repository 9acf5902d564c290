"""The one definition of every table and observation variable (the views over them are in
`common.core.views`).

Everything else derives from here: DuckDB DDL, BigQuery schemas, Terraform's schema files
(`make generate` writes them; a test keeps them in sync), the validation ranges
for ingested values, and the columns the feature code may read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Location ids: lowercase letters, digits, '-', '_', '.'; max 63 (also the api's contract).
LOCATION_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


@dataclass(frozen=True)
class Variable:
    """An hourly observation column, named as Open-Meteo names it."""

    name: str
    unit: str
    low: float
    high: float
    kind: str  # pollutant | weather | index
    description: str


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("pm2_5", "µg/m³", 0, 1500, "pollutant", "Particulate matter < 2.5 µm"),
        Variable("pm10", "µg/m³", 0, 3000, "pollutant", "Particulate matter < 10 µm"),
        Variable("nitrogen_dioxide", "µg/m³", 0, 2000, "pollutant", "NO2"),
        Variable("ozone", "µg/m³", 0, 1500, "pollutant", "O3"),
        Variable("sulphur_dioxide", "µg/m³", 0, 3000, "pollutant", "SO2"),
        Variable("carbon_monoxide", "µg/m³", 0, 60000, "pollutant", "CO"),
        Variable("us_aqi", "USAQI", 0, 1000, "index", "US AQI, max of sub-indices"),
        Variable("us_aqi_pm2_5", "USAQI", 0, 1000, "index", "US AQI sub-index of PM2.5"),
        Variable("us_aqi_pm10", "USAQI", 0, 1000, "index", "US AQI sub-index of PM10"),
        Variable("temperature_2m", "°C", -90, 60, "weather", "Air temperature at 2 m"),
        Variable("relative_humidity_2m", "%", 0, 100, "weather", "Relative humidity at 2 m"),
        Variable("dew_point_2m", "°C", -90, 40, "weather", "Dew point at 2 m"),
        Variable("precipitation", "mm", 0, 500, "weather", "Precipitation, sum of preceding hour"),
        Variable("surface_pressure", "hPa", 300, 1100, "weather", "Surface air pressure"),
        Variable("wind_speed_10m", "km/h", 0, 400, "weather", "Wind speed at 10 m"),
        Variable("wind_direction_10m", "°", 0, 360, "weather", "Wind direction at 10 m"),
    )
}
POLLUTANTS = tuple(n for n, v in VARIABLES.items() if v.kind == "pollutant")
WEATHER = tuple(n for n, v in VARIABLES.items() if v.kind == "weather")

# The longest training window a setting or train request may ask for, and the days of raw
# observations kept: the window plus a margin for the features' lags (hours) and for a
# replay whose as_of lies a few weeks back. Train reads nothing older than the window.
TRAIN_WINDOW_MAX_DAYS = 1096
OBSERVATIONS_RETENTION_DAYS = TRAIN_WINDOW_MAX_DAYS + 35
# Forecasts as issued (weather and CAMS) are training inputs too (the newest issued at or
# before each issue time): a year of them plus the holdout and a margin for a replay.
FORECASTS_AS_ISSUED_RETENTION_DAYS = 400
# How a weather_forecasts row came to be (`kind`): kept by the hourly ingest as the API
# issued it; backfilled from Open-Meteo's Previous Runs API (the value as issued N days
# before, issued_at an upper bound on when it was available); or backfilled from its
# Historical Forecast API, which stitches the first hours of each run (closer to an
# analysis than to a forecast: issued_at is a placeholder that ranks it below every other
# kind). See docs/data.md.
FORECAST_KINDS = ("as-issued", "previous-runs", "historical-forecast")

# BigQuery standard SQL type -> DuckDB type.
DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # BigQuery standard SQL type, a key of DUCKDB_TYPES
    description: str
    required: bool = False

    @property
    def mode(self) -> str:
        return "REQUIRED" if self.required else "NULLABLE"


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # the key its reading view deduplicates on, if any
    partition_by: str | None = None  # a TIMESTAMP column, partitioned by day
    cluster_by: tuple[str, ...] = ()
    # Days a day-partition is kept after its partition_by day (BigQuery deletes it then;
    # None keeps it forever). Relative to the wall clock, not as_of. See docs/data.md.
    retention_days: int | None = None

    def __post_init__(self) -> None:
        if self.retention_days is not None and not self.partition_by:
            raise ValueError(f"{self.name}: retention needs a partition_by column")

    @property
    def expiration_ms(self) -> int | None:
        """The retention as BigQuery's partition expiration."""
        return None if self.retention_days is None else self.retention_days * 86_400_000

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


@dataclass(frozen=True)
class View:
    name: str
    description: str
    sql: str  # BigQuery dialect, unqualified table names
    depends_on: tuple[str, ...] = field(default=())


def _c(name: str, type_: str, description: str, required: bool = False) -> Column:
    return Column(name, type_, description, required)


_VARIABLE_COLUMNS = tuple(
    _c(v.name, "FLOAT64", f"{v.description} [{v.unit}]") for v in VARIABLES.values()
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "locations",
            "Places that are ingested and forecast. Append-only: the newest row per "
            "location_id (by updated_at) is current; read `current_locations`.",
            (
                _c("location_id", "STRING", "Stable id, e.g. beijing-dongsi", True),
                _c("name", "STRING", "Display name"),
                _c("latitude", "FLOAT64", "WGS84 latitude"),
                _c("longitude", "FLOAT64", "WGS84 longitude"),
                _c("source", "STRING", "Source that ingests it", True),
                _c("timezone", "STRING", "IANA time zone of the place"),
                _c("active", "BOOL", "Forecast by predict when true", True),
                _c("updated_at", "TIMESTAMP", "When this row was written", True),
                _c(
                    "sensors",
                    "STRING",
                    "What the place measures, as its source described it (OpenAQ: a JSON "
                    "list of sensors with id, parameter, parameter_id, units and whether "
                    "aircast reads it); NULL when the source says nothing",
                ),
            ),
            key=("location_id",),
        ),
        Table(
            "observations_raw",
            "Every accepted hourly observation as ingested; read `observations` instead.",
            (
                _c("location_id", "STRING", "Location id", True),
                _c("ts", "TIMESTAMP", "Start of the observed hour, UTC", True),
                *_VARIABLE_COLUMNS,
                _c("source", "STRING", "Source name", True),
                _c("run_id", "STRING", "Ingest run that wrote the row", True),
                _c("ingested_at", "TIMESTAMP", "When the row was written", True),
                _c(
                    "provenance",
                    "STRING",
                    "What the pollutant values are: measurement (monitors) or model (a "
                    "model's output: CAMS via open-meteo, or the synthetic source); NULL for "
                    "rows written before it was recorded",
                ),
            ),
            key=("location_id", "ts"),
            partition_by="ts",
            cluster_by=("location_id",),
            retention_days=OBSERVATIONS_RETENTION_DAYS,
        ),
        Table(
            "weather_forecasts",
            "Weather forecasts for future hours, as a source issued them: predict and train "
            "use, for each issue time, the newest one issued at or before it for each "
            "target hour.",
            (
                _c("location_id", "STRING", "Location id", True),
                _c(
                    "issued_at", "TIMESTAMP", "When the forecast was available (ingest as_of)", True
                ),
                _c("ts", "TIMESTAMP", "Forecast hour, UTC", True),
                *(c for c in _VARIABLE_COLUMNS if c.name in WEATHER),
                _c("source", "STRING", "Source name", True),
                _c("run_id", "STRING", "Ingest run that wrote the row", True),
                _c("ingested_at", "TIMESTAMP", "When the row was written", True),
                _c(
                    "kind",
                    "STRING",
                    "as-issued (hourly ingest; also when empty) | previous-runs | "
                    "historical-forecast (backfills; see docs/data.md)",
                ),
            ),
            key=("location_id", "issued_at", "ts"),
            partition_by="ts",
            cluster_by=("location_id",),
            retention_days=FORECASTS_AS_ISSUED_RETENTION_DAYS,
        ),
        Table(
            "air_quality_forecasts",
            "Air-quality model forecasts (CAMS, served by Open-Meteo) for future hours as "
            "issued: the CAMS baseline of forecast_accuracy and an input of the model. "
            "Open-Meteo keeps no past CAMS forecasts, so they accrue from the hourly ingest on.",
            (
                _c("location_id", "STRING", "Location id", True),
                _c(
                    "issued_at", "TIMESTAMP", "When the forecast was available (ingest as_of)", True
                ),
                _c("ts", "TIMESTAMP", "Forecast hour, UTC", True),
                *(c for c in _VARIABLE_COLUMNS if c.name in POLLUTANTS),
                _c("provider", "STRING", "The model that issued it, e.g. cams", True),
                _c("source", "STRING", "Source name", True),
                _c("run_id", "STRING", "Ingest run that wrote the row", True),
                _c("ingested_at", "TIMESTAMP", "When the row was written", True),
            ),
            key=("location_id", "issued_at", "ts"),
            partition_by="ts",
            cluster_by=("location_id",),
            retention_days=FORECASTS_AS_ISSUED_RETENTION_DAYS,
        ),
        Table(
            "air_quality_forecast_days",
            "Which days CAMS forecasts of each pollutant were issued on: a row per issue day "
            "and pollutant each time air_quality_forecasts rows land (written with them), so "
            "train asks whether enough have accrued without reading that table's history. "
            "Rows landed before this table are summarised once by train (kind seed, then a "
            "seeded row per pollutant). See docs/data.md.",
            (
                _c("day", "TIMESTAMP", "The UTC day (its midnight) of the issue times", True),
                _c("variable", "STRING", "The pollutant the forecasts give a value of", True),
                _c(
                    "first_issued",
                    "TIMESTAMP",
                    "The earliest issue time that day among the rows summarised (seeded: when "
                    "the seed read the table)",
                    True,
                ),
                _c(
                    "rows", "INT64", "Forecast rows with a value of the pollutant (seeded: 0)", True
                ),
                _c(
                    "kind",
                    "STRING",
                    "landed (written with the forecasts) | seed (rows landed before this table, "
                    "summarised) | seeded (the seed of the pollutant is complete)",
                    True,
                ),
                _c("source", "STRING", "Source name (empty for seed and seeded rows)"),
                _c(
                    "run_id",
                    "STRING",
                    "Ingest run that landed the rows, or train run that seeded",
                    True,
                ),
                _c("created_at", "TIMESTAMP", "When the row was written", True),
            ),
            partition_by="day",
            cluster_by=("variable",),
            retention_days=FORECASTS_AS_ISSUED_RETENTION_DAYS,
        ),
        Table(
            "rejected_rows",
            "Rows that failed validation, with the reason and the offending payload.",
            (
                _c("run_id", "STRING", "Ingest run", True),
                _c("source", "STRING", "Source name", True),
                _c("location_id", "STRING", "Location id, when known"),
                _c("ts", "TIMESTAMP", "Observation hour, when parseable"),
                _c("reason", "STRING", "Why the row was rejected", True),
                _c("payload", "STRING", "The offending input, as JSON text"),
                _c("rejected_at", "TIMESTAMP", "When the row was rejected", True),
            ),
            partition_by="rejected_at",
            cluster_by=("source",),
            retention_days=90,
        ),
        Table(
            "forecasts",
            "Every forecast ever issued; read `latest_forecasts` for the current ones.",
            (
                _c("run_id", "STRING", "Predict run", True),
                _c("model_version", "STRING", "Model version that forecast", True),
                _c("location_id", "STRING", "Location id", True),
                _c("target", "STRING", "Forecast variable, e.g. pm2_5", True),
                _c("issued_at", "TIMESTAMP", "Issue time t (as_of): no data after it used", True),
                _c("target_ts", "TIMESTAMP", "Forecast hour t + h", True),
                _c("horizon_h", "INT64", "Hours ahead, 1..H", True),
                _c("yhat", "FLOAT64", "Median forecast (p50)", True),
                _c("yhat_lower", "FLOAT64", "Lower bound (p10)"),
                _c("yhat_upper", "FLOAT64", "Upper bound (p90)"),
                _c("created_at", "TIMESTAMP", "When the row was written", True),
                _c(
                    "yhat_model",
                    "FLOAT64",
                    "The model's own median, before its combination with the baselines "
                    "(`yhat` is what was served)",
                ),
            ),
            key=("location_id", "target", "target_ts"),
            partition_by="target_ts",
            cluster_by=("location_id",),
            retention_days=400,
        ),
        Table(
            "interval_offsets",
            "Adaptive widening of p10/p90 by target, issue time and horizon (log units, "
            "positive widens), stepped by each predict run from the forecasts verified since "
            "the previous one. See docs/architecture.md.",
            (
                _c("target", "STRING", "Forecast variable, e.g. pm2_5", True),
                _c("as_of", "TIMESTAMP", "Issue time of the predict run that served them", True),
                _c("horizon_h", "INT64", "Hours ahead, 1..H", True),
                _c("lower_offset", "FLOAT64", "Log units subtracted from the lower bound", True),
                _c("upper_offset", "FLOAT64", "Log units added to the upper bound", True),
                _c("verified_through", "TIMESTAMP", "Last forecast hour verified into them"),
                _c("verified", "INT64", "Forecasts of this horizon verified in this step"),
                _c("run_id", "STRING", "Predict run that wrote the row", True),
                _c("created_at", "TIMESTAMP", "When the row was written", True),
            ),
            key=("target", "as_of", "horizon_h"),
            partition_by="as_of",
            cluster_by=("target",),
            retention_days=400,
        ),
        Table(
            "combination_weights",
            "Weights of the served median's experts (the model, persistence, seasonal naive) "
            "by target, issue time and horizon, stepped by each predict run from the "
            "forecasts verified since the previous one. See docs/architecture.md.",
            (
                _c("target", "STRING", "Forecast variable, e.g. pm2_5", True),
                _c("as_of", "TIMESTAMP", "Issue time of the predict run that served them", True),
                _c("model_version", "STRING", "Model version whose forecasts they weigh", True),
                _c("horizon_h", "INT64", "Hours ahead, 1..H", True),
                _c("expert", "STRING", "model | persistence | seasonal_naive", True),
                _c("weight", "FLOAT64", "Share of the served median (the experts sum to 1)", True),
                _c("cum_loss", "FLOAT64", "The expert's discounted cumulative loss", True),
                _c("gap", "FLOAT64", "The horizon's discounted cumulative mixability gap", True),
                _c("verified_through", "TIMESTAMP", "Last forecast hour verified into them"),
                _c("verified", "INT64", "Forecasts of this horizon verified in this step"),
                _c("run_id", "STRING", "Predict run that wrote the row", True),
                _c("created_at", "TIMESTAMP", "When the row was written", True),
            ),
            key=("target", "as_of", "horizon_h", "expert"),
            partition_by="as_of",
            cluster_by=("target",),
            retention_days=400,
        ),
        Table(
            "place_combination_weights",
            "Each place's own weights of the served median's experts by target, issue time and "
            "horizon group, started from the network's (combination_weights) at the place's "
            "first verified hour and stepped by each predict shard on the place's own verified "
            "forecasts; a place without rows is served the network's. One row per place with a "
            "state each run (carried when nothing was verified), so a shard reads back one "
            "hour. See docs/architecture.md.",
            (
                _c("target", "STRING", "Forecast variable, e.g. pm2_5", True),
                _c("as_of", "TIMESTAMP", "Issue time of the predict run that served them", True),
                _c("location_id", "STRING", "Location id", True),
                _c("horizon_group", "STRING", "Horizons the weights serve, e.g. 4-12", True),
                _c("shard", "STRING", "Predict shard that stepped them, k/N, e.g. 3/10", True),
                _c("model_version", "STRING", "Version whose forecasts last stepped them"),
                _c("weight_model", "FLOAT64", "The model's share of the served median", True),
                _c("weight_persistence", "FLOAT64", "Persistence's share", True),
                _c("weight_seasonal_naive", "FLOAT64", "Seasonal naive's share", True),
                _c("loss_model", "FLOAT64", "The model's discounted cumulative loss", True),
                _c("loss_persistence", "FLOAT64", "Persistence's discounted cumulative loss", True),
                _c("loss_seasonal_naive", "FLOAT64", "Seasonal naive's cumulative loss", True),
                _c("gap", "FLOAT64", "The discounted cumulative mixability gap", True),
                _c(
                    "lower_offset",
                    "FLOAT64",
                    "The place's own widening of the p10 (log units), added to the target's",
                ),
                _c(
                    "upper_offset",
                    "FLOAT64",
                    "The place's own widening of the p90 (log units), added to the target's",
                ),
                _c("verified_through", "TIMESTAMP", "Last forecast hour verified into them"),
                _c("started_at", "TIMESTAMP", "Issue time the state started from the network's"),
                _c("verified", "INT64", "Forecasts of this place and group verified in this step"),
                _c("run_id", "STRING", "Predict run that wrote the row", True),
                _c("created_at", "TIMESTAMP", "When the row was written", True),
            ),
            key=("target", "as_of", "location_id", "horizon_group"),
            partition_by="as_of",
            cluster_by=("target", "shard"),
            retention_days=35,
        ),
        Table(
            "runs",
            "Run audit, append-only: a `running` row at start, the outcome row at the end. "
            "Read `run_status` for one row per run.",
            (
                _c("run_id", "STRING", "Run id", True),
                _c("function", "STRING", "ingest | train | predict | ...", True),
                _c("as_of", "TIMESTAMP", "The run's as_of", True),
                _c(
                    "status",
                    "STRING",
                    "running (the start row) | success | partial | rejected | failed",
                    True,
                ),
                _c("started_at", "TIMESTAMP", "Start", True),
                _c("finished_at", "TIMESTAMP", "End (empty on the start row)"),
                _c("counts", "STRING", "Counts as JSON text"),
                _c("error", "STRING", "Error message when failed"),
                _c("params", "STRING", "Request parameters as JSON text"),
                _c(
                    "deadline_at",
                    "TIMESTAMP",
                    "started_at + the function's timeout: still running after it means lost",
                ),
            ),
            partition_by="started_at",
            cluster_by=("function",),
            retention_days=400,
        ),
    )
}


def bigquery_schema(table: Table) -> list[dict[str, str]]:
    """The table's schema in the BigQuery API's JSON form (as Terraform takes it)."""
    return [
        {"name": c.name, "type": c.type, "mode": c.mode, "description": c.description}
        for c in table.columns
    ]
