"""Online forecasts for `POST /v1/predict`: the production model on caller-sent observations.

The api imports this module lazily, and this module imports the heavy code (pandas,
xgboost, the feature code) only inside `predict_online`, so lookups never pay for it and
only the first online prediction of an instance loads the model.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from common.errors import AircastError, Conflict

if TYPE_CHECKING:
    from common.api_models import LocationForecastResponse, PredictRequest
    from common.config import Settings
    from common.storage import ArtifactStore


class NotServable(AircastError):
    """The production model exists but this build cannot run it online."""

    status = 501


def production_key(model_name: str) -> str:
    return f"models/{model_name}/production.json"


def metadata_key(model_name: str, version: str) -> str:
    return f"models/{model_name}/{version}/metadata.json"


def predict_online(
    request: PredictRequest, settings: Settings, store: ArtifactStore
) -> LocationForecastResponse:
    """Forecast horizons 1..`request.hours` (default: the model's horizon) from the request.

    Input (validated by pydantic before this is called):
    - `request.observations`: the caller's recent hourly rows (`ts` plus any columns of
      `common.schema.VARIABLES`, None where missing), in any order; the last `ts` is the
      issue time t. They stand in for the warehouse's `observations` rows of one location.
    - `request.weather_forecasts`: optional future-hour weather rows (`ts` > t), standing in
      for `weather_forecasts` issued at t.
    - `request.location_id`: optional; a location known to the snapshot lends its metadata.
    - `request.hours`: must not exceed the model's horizon (else `BadRequest(field="hours")`).

    Must build features with the same `common` feature code as batch predict, load the
    production model named by `models/<settings.model_name>/production.json` (cache it per
    version in the process), and answer a `LocationForecastResponse` whose points are
    horizons 1..hours with yhat (p50) and yhat_lower/yhat_upper (p10/p90), `issued_at` = t.

    Errors: no production model -> `Conflict` (409); too little history for the features ->
    `BadRequest` naming `observations` (400); unknown `location_id` -> `NotFoundError` (404).
    """
    model_name = settings.model_name
    if store.generation(production_key(model_name)) == 0:
        raise Conflict(f"no production model for {model_name!r} yet: train and promote one first")
    if (
        importlib.util.find_spec("common.features") is None
        or importlib.util.find_spec("common.model") is None
    ):
        raise NotServable(
            f"a production model for {model_name!r} exists, but this build has no online "
            "feature code (common.features/common.model) to run it"
        )
    raise NotServable("online prediction is not wired to the model code in this build yet")
