"""Accuracy of forecasts and baselines on the same rows: MAE/RMSE overall and per horizon,
interval coverage, MAE per location.

The CAMS forecast (keys.cams, as issued by the issue time) is a third baseline where it
exists: scored on the rows that have one, beside the model's MAE on those same rows
("aircast vs CAMS"); None where no row has one, never zero."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BASELINES = ("persistence", "seasonal_naive")


def _scores(actual: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    err = pred - actual
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err * err)))}


def evaluate(keys: pd.DataFrame, q: np.ndarray) -> dict[str, Any]:
    """Metrics of forecasts `q` (n, 3: p10, p50, p90) and of the baselines on `keys` rows.

    keys: horizon_h, location_id, actual, persistence, seasonal_naive.
    """
    actual = keys["actual"].to_numpy(float)
    h = keys["horizon_h"].to_numpy()
    cams = keys["cams"].to_numpy(float) if "cams" in keys else None
    covered = (actual >= q[:, 0]) & (actual <= q[:, 2])
    out: dict[str, Any] = {"rows": len(keys), "model": _scores(actual, q[:, 1])}
    out["model"]["coverage"] = float(covered.mean())
    for b in BASELINES:
        out[b] = _scores(actual, keys[b].to_numpy(float))
    by_h = []
    for k in sorted(np.unique(h)):
        m = h == k
        row = {"horizon_h": int(k), "n": int(m.sum()), **_scores(actual[m], q[m, 1])}
        row["coverage"] = float(covered[m].mean())
        for b in BASELINES:
            s = _scores(actual[m], keys[b].to_numpy(float)[m])
            row[f"{b}_mae"], row[f"{b}_rmse"] = s["mae"], s["rmse"]
        if cams is not None:
            row.update(_cams(actual[m], q[m, 1], cams[m], prefix="cams_"))
        by_h.append(row)
    out["by_horizon"] = by_h
    if cams is not None:
        out["cams"] = _cams(actual, q[:, 1], cams)
    err = pd.Series(np.abs(q[:, 1] - actual)).groupby(keys["location_id"].astype(str).to_numpy())
    out["mae_by_location"] = {k: float(v) for k, v in err.mean().items()}
    return out


def _cams(
    actual: np.ndarray, model: np.ndarray, cams: np.ndarray, prefix: str = ""
) -> dict[str, Any]:
    """CAMS's MAE and the model's on the rows with a CAMS forecast (None when none)."""
    m = ~np.isnan(cams)
    n = int(m.sum())
    mae = float(np.mean(np.abs(cams[m] - actual[m]))) if n else None
    model_mae = float(np.mean(np.abs(model[m] - actual[m]))) if n else None
    return {f"{prefix}n": n, f"{prefix}mae": mae, f"{prefix}model_mae": model_mae}


def ratio(metrics: dict[str, Any], baseline: str = "persistence") -> float:
    """Model MAE over a baseline's MAE on the same rows (< 1 is better)."""
    return float(metrics["model"]["mae"] / metrics[baseline]["mae"])
