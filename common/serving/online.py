"""Online forecasts for `POST /v1/predict`: the production model on caller-sent observations.

The api imports this module lazily, and this module imports the heavy code (pandas,
xgboost, the feature code) only inside `predict_online`, so lookups never pay for it and
only the first online prediction of an instance loads the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.core.errors import BadRequest
from common.serving.indices import forecast_points
from common.serving.models import LocationForecastResponse

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

    from common.core.config import Settings
    from common.forecasting.adaptation import Adaptation
    from common.forecasting.registry import Loaded
    from common.forecasting.snapshot import LocationForecast, PlaceCombination, RecentObservations
    from common.serving.cache import Parts
    from common.serving.models import OnlinePredictRequest
    from common.storage import ArtifactStore


def place_weights_of(parts: Parts, location_id: str | None) -> PlaceCombination | None:
    """The place's own combination weights as the snapshot part of its shard carries them
    (only this place's), or None: an unknown place, or one without weights of its own yet,
    is served the network's, as batch predict serves it."""
    if location_id is None:
        return None
    serving = parts.of(location_id).get()
    return None if serving is None else serving.part.place_weights(location_id)


def predict_online(
    request: OnlinePredictRequest,
    settings: Settings,
    store: ArtifactStore,
    place: dict[str, object],
    adaptation: Adaptation | None = None,
    place_weights: PlaceCombination | None = None,
) -> LocationForecastResponse:
    """Forecast horizons 1..`request.hours` (default: the model's horizon) for observations
    the caller sends instead of the warehouse's.

    The rows go through the same feature code and production model as batch predict, so a
    caller with its own sensor gets the forecast predict would make from the same history;
    the last `ts` is the issue time. `place` is where (`common.serving.render.place_of`: a known
    `location_id` lends its coordinates and time zone) and `adaptation` the interval offsets
    and combination weights predict serves this hour, and `place_weights` the place's own
    (`place_weights_of`), so online forecasts match the batch ones. Too little history or
    too many hours is a 400 naming the field, no production model a 409.
    """
    from common.core.aqi import get_scheme
    from common.core.schema import VARIABLES
    from common.forecasting.registry import Registry, model_name_for

    target = settings.target_of(request.target)  # 400 naming `target` if not forecast here
    loaded = Registry.of_target(store, settings, target).load_production()  # 409 without one
    horizon = loaded.metadata.horizon
    hours = request.hours or horizon
    if hours > horizon:
        raise BadRequest(f"hours: the model forecasts at most {horizon} hours", field="hours")
    obs, weather = _frames(request, place)
    issue = obs["ts"].max().to_pydatetime()
    fc = _forecast(loaded, obs, issue, place, weather, adaptation, place_weights)
    history = _history(obs, target, issue)
    points, worst = forecast_points(get_scheme(settings.aqi_scheme), target, fc, history, hours)
    return LocationForecastResponse(
        location_id=str(place["location_id"]),
        model_name=model_name_for(settings.model_name, target, settings.default_target),
        model_version=loaded.version,
        target=target,
        unit=VARIABLES[target].unit,
        issued_at=issue,
        points=points,
        worst=worst,
    )


def _forecast(
    loaded: Loaded,
    obs: pd.DataFrame,
    issue: dt.datetime,
    place: dict[str, object],
    weather: pd.DataFrame | None,
    adaptation: Adaptation | None,
    place_weights: PlaceCombination | None = None,
) -> LocationForecast:
    """The production model's forecast at `issue`, as batch predict makes it (the same
    offsets and combination weights, the place's own where it has them); too little
    history is a 400 naming `observations`."""
    import pandas as pd

    from common.forecasting.adaptation import Adaptation
    from common.forecasting.combination import EXPERTS
    from common.forecasting.forecast import forecast_frame
    from common.forecasting.place_weights import PlaceWeights
    from common.forecasting.snapshot import LocationForecast

    adapted = adaptation or Adaptation()
    places = None
    if place_weights is not None and list(place_weights.experts) == list(EXPERTS):
        places = PlaceWeights.served(
            place_weights.groups, place_weights.weights, place_weights.offsets
        )
    frame, skipped = forecast_frame(
        loaded,
        obs,
        issue,
        pd.DataFrame([place]),
        weather,
        offsets=adapted.offsets,
        weights=adapted.weights_for(loaded.version),
        place_weights=places,
    )
    if skipped:
        raise BadRequest(f"observations: {skipped[0][1]}", field="observations")
    ordered = frame.sort_values("horizon_h")
    return LocationForecast(
        issued_at=issue,
        model_version=loaded.version,
        **{
            c: [round(float(v), 3) for v in ordered[c]]
            for c in ("yhat", "yhat_lower", "yhat_upper")
        },
    )


def _frames(
    request: OnlinePredictRequest, place: dict[str, object]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The sent observations (on the hour, the last sent of an hour kept) and weather
    forecasts as frames at the place."""
    import pandas as pd

    obs = pd.DataFrame([o.model_dump() for o in request.observations])
    obs["ts"] = pd.to_datetime(obs["ts"], utc=True).dt.floor("h")
    obs = obs.drop_duplicates("ts", keep="last").assign(location_id=place["location_id"])
    weather = None
    if request.weather_forecasts:
        weather = pd.DataFrame([w.model_dump() for w in request.weather_forecasts])
        weather["ts"] = pd.to_datetime(weather["ts"], utc=True).dt.floor("h")
        weather = weather.assign(location_id=place["location_id"])
    return obs, weather


def _history(obs: pd.DataFrame, target: str, issue: dt.datetime) -> RecentObservations:
    """The target's sent values over the 12 hours up to the issue time: what the index's
    averaging reads (NowCast: 12 h)."""
    import datetime as dt

    import pandas as pd

    from common.forecasting.snapshot import RecentObservations

    start = issue - dt.timedelta(hours=11)  # what the index's averaging reads (NowCast: 12 h)
    recent = (
        obs[obs["ts"] >= start]
        .set_index("ts")[target]
        .reindex(pd.date_range(start, issue, freq="h"))
    )
    return RecentObservations(
        start=start, values=[None if pd.isna(v) else float(v) for v in recent]
    )
