"""Forecast rows from a loaded model: the one path that batch predict and the api's online
predict share, so both build features with the training code and answer identically."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd

from common.forecasting.adaptation import Offsets
from common.forecasting.combination import Weights
from common.forecasting.features import serving_features
from common.forecasting.model import Widening
from common.forecasting.place_weights import PlaceWeights
from common.forecasting.registry import Loaded


def forecast_frame(
    loaded: Loaded,
    obs: pd.DataFrame,
    as_of: dt.datetime,
    places: pd.DataFrame,
    weather: pd.DataFrame | None,
    timings: dict[str, float] | None = None,
    neighbours: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    offsets: Offsets | None = None,
    cams: pd.DataFrame | None = None,
    weights: Weights | None = None,
    place_weights: PlaceWeights | None = None,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(forecast rows, skipped) for every location in `places`: the batch and online path
    (`neighbours`: see `serving_features`; `offsets`: the target's adaptive interval
    widening, see `common.forecasting.adaptation`; `cams`: the CAMS forecasts as issued,
    `common.forecasting.as_issued.read_cams`, read when the model uses them; `weights`:
    the combination with the baselines, see `common.forecasting.combination`, else the
    version's own start; `place_weights`: the places' own weights and interval offsets,
    served where a place has them). Each row keeps the model's own median beside the served one
    (`yhat_model`)."""
    spec = loaded.metadata.feature_spec()
    t0 = time.perf_counter()
    X, keys, skipped = serving_features(obs, as_of, spec, places, weather, neighbours, cams)
    t1 = time.perf_counter()
    if len(X):
        served: Weights | np.ndarray | None = weights
        widening: Widening | None = offsets
        if place_weights is not None and place_weights.places:
            network = weights if weights is not None else loaded.model.combination
            ids, h = keys["location_id"].to_numpy(), X["horizon_h"].to_numpy()
            served = place_weights.at(ids, h, network)
            lo, hi = offsets.at(h) if offsets is not None else (np.zeros(len(h)),) * 2
            own_lo, own_hi = place_weights.offsets_at(ids, h)
            widening = (lo + own_lo, hi + own_hi)  # the target's and the place's own
        q, own = loaded.model.predict_with_expert(X, widening, served)
    else:
        q, own = np.empty((0, 3)), np.empty(0)
    t2 = time.perf_counter()
    if timings is not None:
        timings["features_s"] = round(t1 - t0, 4)
        timings["model_s"] = round(t2 - t1, 4)
    frame = pd.DataFrame(
        {
            "location_id": keys["location_id"].astype(str),
            "target": spec.target,
            "issued_at": keys["issued_at"],
            "target_ts": keys["target_ts"],
            "horizon_h": keys["horizon_h"].astype("int64"),
            "yhat": q[:, 1],
            "yhat_lower": q[:, 0],
            "yhat_upper": q[:, 2],
            "yhat_model": own,
        }
    )
    return frame, skipped
