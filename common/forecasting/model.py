"""The forecast model: one global XGBoost booster for every location and horizon.

It predicts the change of log1p(target) from the anchor (the last observation at t) rather
than the level: that is what makes short horizons beat persistence. Each quantile (p10,
p50, p90) has its own `reg:quantileerror` booster: XGBoost's multi-alpha objective costs
about twice as much per round as three single-alpha boosters, and the tails do well with
shallower trees. The interval is then calibrated per horizon and per tail by split
conformal on held-out rows, so p10..p90 covers about 80% at every horizon, not only on
average. Rows are weighted by 1 / mean |change| of their horizon
(to the power `horizon_weight_power`, 1 by default) so that the easy short horizons are
not drowned out by the large errors of long ones.

Per-horizon safety: on the calibration block (never the holdout) each horizon learns a
shrinkage factor alpha_h in [0, 1], the share of the booster's change from the last value
that is applied (0 = persistence, 1 = the booster as is), chosen to minimise the MAE of
the median there. A horizon where the booster does worse than "the last value" on
calibration rows is pulled toward it. The interval is shifted with the median and the
conformal tail shifts are computed after shrinkage, so coverage holds for what is served.

What is served is then the median combined online with persistence and seasonal naive
(`common.forecasting.combination`; its state starts from the calibration block): the
median moves to the combination, and the calibrated band stretches where it must to hold
it, so the band keeps the coverage it was calibrated for.

Saved in XGBoost's own format (UBJSON): `model.ubj` is the median, `model_p10.ubj` and
`model_p90.ubj` the tails. Everything else needed to use it (features, calibration)
travels in the version's metadata.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from common.forecasting.adaptation import Offsets
from common.forecasting.combination import Weights, combine, learn

QUANTILES = (0.1, 0.5, 0.9)
# The adaptive widening of served bounds: the target's offsets by horizon, or each row's
# own (lower, upper) (the target's plus its place's, `common.forecasting.place_weights`).
Widening = Offsets | tuple[np.ndarray, np.ndarray]
FILES = {0.1: "model_p10.ubj", 0.5: "model.ubj", 0.9: "model_p90.ubj"}
DEFAULT_PARAMS: dict[str, Any] = {
    "tree_method": "hist",
    "objective": "reg:quantileerror",
    "learning_rate": 0.08,
    "max_depth": 8,
    "tail_max_depth": 5,  # p10 and p90
    "tail_learning_rate": 0.1,
    "tail_max_rounds": 150,
    "median_objective": "reg:quantileerror",
    "min_child_weight": 20,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "max_bin": 128,
    "nthread": 2,
    "seed": 0,
}
# Keys of `params` that shape the fit but are not XGBoost parameters.
MODEL_ONLY_PARAMS = frozenset({"horizon_weight_power"})
SHRINK_GRID = np.linspace(0.0, 1.0, 21)
MIN_CALIBRATION_ROWS = 30
# Shrink a horizon only where the full model beats persistence on calibration by less than
# this share of its error: elsewhere the model is kept whole.
SAFE_MARGIN = 0.05
MAX_ROUNDS = 400
EARLY_STOPPING = 20


@dataclass
class ForecastModel:
    features: list[str]
    horizon: int
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    boosters: dict[float, xgb.Booster] = field(default_factory=dict)
    # Per-horizon additive corrections (log-change space) for the lower and upper bounds.
    lower_shift: list[float] = field(default_factory=list)
    upper_shift: list[float] = field(default_factory=list)
    best_iterations: dict[str, int] = field(default_factory=dict)
    # Per-horizon share of the median's change applied (empty: 1 everywhere, old versions).
    shrink: list[float] = field(default_factory=list)
    # Where the online combination with the baselines starts (None: the model alone).
    combination: Weights | None = None

    def _booster_params(self, alpha: float) -> dict[str, Any]:
        p = {
            k: v
            for k, v in self.params.items()
            if not k.startswith(("tail_", "median_")) and k not in MODEL_ONLY_PARAMS
        }
        p["quantile_alpha"] = alpha
        if alpha == 0.5:
            p["objective"] = self.params.get("median_objective", "reg:quantileerror")
        else:
            p["max_depth"] = self.params.get("tail_max_depth", p.get("max_depth", 6))
            p["learning_rate"] = self.params.get("tail_learning_rate", p["learning_rate"])
        return p

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        X_val: pd.DataFrame,
        y_val: np.ndarray,
        max_rounds: int = MAX_ROUNDS,
    ) -> ForecastModel:
        """Fit each quantile with early stopping on a later validation block (never shuffled)."""
        power = float(self.params.get("horizon_weight_power", 1.0))
        w = horizon_weights(X["horizon_h"].to_numpy(), y, self.horizon, power)
        w_val = horizon_weights(X_val["horizon_h"].to_numpy(), y_val, self.horizon, power)
        bins = int(self.params.get("max_bin", 256))
        dtrain = xgb.QuantileDMatrix(X[self.features], y, weight=w, max_bin=bins)
        dval = xgb.QuantileDMatrix(
            X_val[self.features], y_val, weight=w_val, ref=dtrain, max_bin=bins
        )
        for alpha in QUANTILES:
            booster = xgb.train(
                self._booster_params(alpha),
                dtrain,
                num_boost_round=max_rounds
                if alpha == 0.5
                else min(max_rounds, int(self.params.get("tail_max_rounds", max_rounds))),
                evals=[(dval, "val")],
                early_stopping_rounds=EARLY_STOPPING,
                verbose_eval=False,
            )
            # Keep only the rounds up to the best one, so a saved model predicts the same.
            best = int(booster.best_iteration)
            self.boosters[alpha] = booster[: best + 1]
            self.best_iterations[f"p{round(alpha * 100)}"] = best + 1
        self.lower_shift = [0.0] * self.horizon
        self.upper_shift = [0.0] * self.horizon
        self.shrink = []
        return self

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 3) quantiles of the log change, uncalibrated, sorted per row."""
        if len(self.boosters) != len(QUANTILES):
            raise RuntimeError("model is not fitted")
        # One float32 matrix in the trained column order, shared by the three boosters
        # (a DataFrame would be converted and its names validated once per booster).
        data = np.ascontiguousarray(X[self.features].to_numpy(dtype=np.float32))
        q = np.column_stack([self.boosters[a].inplace_predict(data) for a in QUANTILES])
        return np.sort(q.astype(float), axis=1)

    def calibrate(
        self, X: pd.DataFrame, y: np.ndarray, target_ts: pd.Series | None = None
    ) -> ForecastModel:
        """On calibration rows: the per-horizon shrinkage of the median toward the last
        value, the split-conformal shift of each tail so each misses ~10% of the rows,
        and (when the rows' target hours are given) the state the online combination with
        the baselines starts from (`common.forecasting.combination`)."""
        h = X["horizon_h"].to_numpy().astype(int)
        self.shrink = learn_shrinkage(
            self.raw(X)[:, 1], y, h, X["level"].to_numpy(dtype=float), self.horizon
        )
        q = self._shrunk(self.raw(X), h)
        if target_ts is not None:  # where the online combination starts
            self.combination = learn(q[:, 1], X, y, target_ts, self.horizon)
        lo, hi = [], []
        for k in range(1, self.horizon + 1):
            m = h == k
            if m.sum() < MIN_CALIBRATION_ROWS:  # too few rows for a tail: keep the raw quantile
                lo.append(0.0)
                hi.append(0.0)
                continue
            lo.append(float(np.quantile(y[m] - q[m, 0], QUANTILES[0])))
            hi.append(float(np.quantile(y[m] - q[m, 2], QUANTILES[2])))
        self.lower_shift, self.upper_shift = lo, hi
        return self

    def predict_change(
        self,
        X: pd.DataFrame,
        offsets: Widening | None = None,
        weights: Weights | np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, 3) calibrated quantiles of the log change: the model's band (shrunk,
        shifted, widened by the target's adaptive `offsets` when given) around the median
        combined with the baselines (by `weights`, the online state, else the version's
        starting state), the band stretched where needed to hold that median."""
        return self._changes(X, offsets, weights)[0]

    def _changes(
        self, X: pd.DataFrame, offsets: Widening | None, weights: Weights | np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(served quantiles of the change, the model expert's median change)."""
        q, expert = self.calibrated(X, weights)
        lo, hi = (
            offsets.at(X["horizon_h"].to_numpy())
            if isinstance(offsets, Offsets)
            else (offsets or (0.0, 0.0))
        )
        return widened(q, lo, hi), expert

    def calibrated(
        self, X: pd.DataFrame, weights: Weights | np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(the calibrated band around the combined median before any adaptive offset,
        the model expert's median change): what `widened` serves from."""
        h = X["horizon_h"].to_numpy().astype(int)
        q = self._shrunk(self.raw(X), h)
        expert = q[:, 1].copy()
        k = np.clip(h, 1, self.horizon) - 1
        q[:, 0] += np.asarray(self.lower_shift)[k]
        q[:, 2] += np.asarray(self.upper_shift)[k]
        w = self.combination if weights is None else weights
        if w is not None:  # the median moves to the experts' combination
            q[:, 1] = combine(expert, X, w)
        return q, expert

    def expert_change(self, X: pd.DataFrame) -> np.ndarray:
        """The model expert's median change (shrunk, not combined): what the combination
        weighs and verifies."""
        return self._shrunk(self.raw(X), X["horizon_h"].to_numpy().astype(int))[:, 1]

    def _shrunk(self, q: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Scale the median's change by alpha_h; the tails move with the median."""
        if not self.shrink:
            return q
        alpha = np.asarray(self.shrink, dtype=float)[np.clip(h, 1, self.horizon) - 1]
        move = (alpha - 1.0) * q[:, 1]
        return q + move[:, None]

    def predict(
        self,
        X: pd.DataFrame,
        offsets: Widening | None = None,
        weights: Weights | np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, 3) forecasts of the target itself: p10, p50, p90 (never negative)."""
        return self.predict_with_expert(X, offsets, weights)[0]

    def predict_with_expert(
        self,
        X: pd.DataFrame,
        offsets: Widening | None = None,
        weights: Weights | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p10/p50/p90 as served, the model expert's own median): the second is what the
        online combination verifies the model by (`common.forecasting.combination`)."""
        q, expert = self._changes(X, offsets, weights)
        level = X["level"].to_numpy(dtype=float)
        served = np.clip(np.expm1(level[:, None] + q), 0.0, None)
        return served, np.clip(np.expm1(level + expert), 0.0, None)

    def to_files(self) -> dict[str, bytes]:
        """The boosters in XGBoost's own UBJSON format, by file name."""
        if len(self.boosters) != len(QUANTILES):
            raise RuntimeError("model is not fitted")
        return {FILES[a]: bytes(b.save_raw(raw_format="ubj")) for a, b in self.boosters.items()}

    def state(self) -> dict[str, Any]:
        """What metadata.json must carry to rebuild this model from its .ubj files."""
        return {
            "features": self.features,
            "horizon": self.horizon,
            "params": self.params,
            "quantiles": list(QUANTILES),
            "files": {f"p{round(a * 100)}": f for a, f in FILES.items()},
            "best_iterations": self.best_iterations,
            "lower_shift": self.lower_shift,
            "upper_shift": self.upper_shift,
            "shrink": self.shrink,
            "combination": None if self.combination is None else self.combination.to_json(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes], state: dict[str, Any]) -> ForecastModel:
        boosters = {}
        for alpha, name in FILES.items():
            b = xgb.Booster()
            b.load_model(bytearray(files[name]))
            b.set_param({"nthread": 1})
            boosters[alpha] = b
        return cls(
            features=list(state["features"]),
            horizon=int(state["horizon"]),
            params=dict(state["params"]),
            boosters=boosters,
            lower_shift=list(state["lower_shift"]),
            upper_shift=list(state["upper_shift"]),
            best_iterations=dict(state.get("best_iterations", {})),
            shrink=[float(a) for a in state.get("shrink", [])],
            combination=(
                Weights.from_json(state["combination"]) if state.get("combination") else None
            ),
        )


def learn_shrinkage(
    change: np.ndarray, y: np.ndarray, h: np.ndarray, level: np.ndarray, horizon: int
) -> list[float]:
    """Per horizon, the alpha on SHRINK_GRID minimising the MAE of expm1(level + alpha *
    change) against the actual value; 1 where there are too few rows to tell, and 1 where
    the whole change already beats persistence (alpha 0) by SAFE_MARGIN: the shrinkage is a
    safety against losing to the last value, not a second fit of every horizon to one
    calibration block (which cost the long horizons more than it won: docs/studies/shrinkage.md)."""
    actual = np.expm1(level + y)
    out = []
    for k in range(1, horizon + 1):
        m = h == k
        if m.sum() < MIN_CALIBRATION_ROWS:
            out.append(1.0)
            continue
        pred = np.clip(np.expm1(level[m, None] + np.outer(change[m], SHRINK_GRID)), 0.0, None)
        mae = np.abs(pred - actual[m, None]).mean(axis=0)
        if mae[-1] <= mae[0] * (1 - SAFE_MARGIN):  # the model clearly wins here: keep it
            out.append(1.0)
            continue
        # The largest alpha among the best (ties keep more of the model).
        best = np.flatnonzero(mae <= mae.min() * (1 + 1e-12))[-1]
        out.append(float(SHRINK_GRID[best]))
    return out


def horizon_weights(h: np.ndarray, y: np.ndarray, horizon: int, power: float = 1.0) -> np.ndarray:
    """(1 / mean |change| of each row's horizon) ** power, normalised to mean 1."""
    scale = np.ones(horizon + 1)
    hi = h.astype(int)
    for k in range(1, horizon + 1):
        m = hi == k
        if m.any():
            scale[k] = max(float(np.mean(np.abs(y[m]))), 1e-3)
    w = (1.0 / scale[hi]) ** power
    return (w / w.mean()).astype(np.float32)


def widened(q: np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> np.ndarray:
    """(n, 3) served quantiles of the change: the calibrated band `q` (`calibrated`) with
    each row's adaptive offsets added outside its bounds (log units, positive widens),
    then stretched where it must be to hold the combined median."""
    out = np.array(q, dtype=float, copy=True)
    out[:, 0] = np.minimum(out[:, 0] - lower, out[:, 1])
    out[:, 2] = np.maximum(out[:, 2] + upper, out[:, 1])
    return out
