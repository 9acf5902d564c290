"""report.png of a model version: the holdout forecast against what happened, and the
error by horizon next to the baselines. Matplotlib is imported here only, by train."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd


def backtest_png(keys: pd.DataFrame, q: np.ndarray, metrics: dict[str, Any], version: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), dpi=90)
    loc = keys["location_id"].astype(str).value_counts().index[0]
    for h, colour in ((1, "tab:blue"), (24, "tab:orange")):
        m = (keys["location_id"].astype(str) == loc).to_numpy() & (
            keys["horizon_h"] == h
        ).to_numpy()
        if not m.any():
            continue
        order = np.argsort(keys["target_ts"].to_numpy()[m])
        ts = keys["target_ts"].to_numpy()[m][order]
        top.fill_between(
            ts,
            q[m, 0][order],
            q[m, 2][order],
            color=colour,
            alpha=0.2,
            label=f"p10-p90, {h} h ahead",
        )
        top.plot(ts, q[m, 1][order], color=colour, lw=1, label=f"p50, {h} h ahead")
    actual = keys[keys["location_id"].astype(str) == loc].drop_duplicates("target_ts")
    actual = actual.sort_values("target_ts")
    top.plot(actual["target_ts"], actual["actual"], color="black", lw=1, label="observed")
    top.set_title(f"{version}: holdout forecasts at {loc}")
    top.legend(fontsize=7, ncol=3)
    by_h = pd.DataFrame(metrics["by_horizon"])
    bottom.plot(by_h["horizon_h"], by_h["mae"], marker="o", label="model")
    bottom.plot(by_h["horizon_h"], by_h["persistence_mae"], label="persistence")
    bottom.plot(by_h["horizon_h"], by_h["seasonal_naive_mae"], label="seasonal naive")
    bottom.set_xlabel("horizon (hours)")
    bottom.set_ylabel("MAE")
    bottom.set_title(f"MAE by horizon; p10-p90 coverage {metrics['model']['coverage']:.2f}")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
