"""The warehouse reads a train run's sampled selections make at N locations, counted from
the sampling plan alone (no data, no fit): what BigQuery's per-query latency multiplies.

    .venv/bin/python bench/train_reads.py --locations 10000 100000 --days 365 [--max-rows N]

Each sampled selection (`common.forecasting.sampling.sampled_examples`) reads one grid per
batch of its day-segments' drawn locations: the drawn locations' columns, their
neighbours' target (when any are not drawn), and the CAMS forecasts as issued of the kept
pairs (every batch that keeps one). This replays the same plan (`_units`, `_batches`, the
same seeded draws, over `bench/scale_train.py`'s places) with the observed share of target
values taken as `--observed` (~0.95 for its synthetic series), and counts, per step of a
run at default settings: the candidate's fit, validation and calibration blocks, its
holdout, each backtest fold as it read before it refitted on the candidate's rows, the
production model's score on the holdout (a run with a production model), and the drift
references. Check it against `bench/scale_train.py`'s measured queries by step at a size
both can run (10,000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.core.config import load_settings
from common.forecasting import sampling
from common.forecasting.features import HISTORY_HOURS
from common.forecasting.training import block_budgets, fit_blocks
from common.train.plan import HOLDOUT_ROWS

AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)  # bench/scale_train.py's
BOX = ((40.0, 64.0), (-5.0, 25.0))
HOUR = dt.timedelta(hours=1)


def places(n: int) -> tuple[list[str], pd.DataFrame]:
    """bench/scale_train.py's ids and coordinates for n locations."""
    rng = np.random.default_rng(n)
    ids = [f"scale-{i:06d}" for i in range(n)]
    lat = rng.uniform(*BOX[0], n).round(4)
    lon = rng.uniform(*BOX[1], n).round(4)
    return ids, pd.DataFrame({"location_id": ids, "latitude": lat, "longitude": lon})


def selection_reads(
    ids: list[str],
    where: pd.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
    max_rows: int,
    horizon: int,
    observed: float,
) -> dict[str, int]:
    """Batches and reads of one `sampled_examples(start, end, max_rows)` (seed 0)."""
    n_hours = int((end - start) / HOUR) + 1
    pairs = max(max_rows // horizon, 1)
    expected = len(ids) * n_hours * observed
    rate = min(1.0, pairs / max(expected, 1))
    share = min(1.0, sampling.OVERSAMPLE * rate)
    rng = np.random.default_rng(0)
    cells = sampling.MAX_CELLS
    units = sampling._units(
        ids,
        where,
        n_hours,
        share,
        rng,
        max(cells // (sampling.SEGMENT_HOURS + HISTORY_HOURS + horizon), 1),
    )
    batches = sampling._batches(units, HISTORY_HOURS + horizon + 1, cells)
    taken = reads = used = 0
    for batch in batches:
        if taken >= pairs:
            break
        used += 1
        main = np.unique(np.concatenate([u.locs for u in batch]))
        need = np.unique(np.concatenate([u.need for u in batch]))
        reads += 1 + (len(need) > len(main))
        eligible = sum(len(u.locs) * (u.last - u.first + 1) for u in batch) * observed
        take = min(math.floor(eligible), round(eligible * rate / share), pairs - taken)
        taken += take
        reads += take > 0  # the CAMS forecasts as issued of the kept pairs
    return {"batches": used, "reads": reads}


def fit_reads(
    ids: list[str],
    where: pd.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
    max_rows: int,
    horizon: int,
    observed: float,
) -> dict[str, int]:
    """The three blocks of one `fit_model` over issue times [start, end]."""
    out = {"batches": 0, "reads": 0}
    budget = block_budgets(max_rows)
    for name, (a, b) in fit_blocks(start, end, horizon).items():
        got = selection_reads(ids, where, a, b, budget[name], horizon, observed)
        out = {k: out[k] + got[k] for k in out}
    return out


def run_reads(
    n: int, days: int, observed: float, max_rows: int | None = None
) -> dict[str, dict[str, int]]:
    """Reads by step of a train run at n locations x days (as_of AS_OF), default settings
    but the row budget `max_rows` when given."""
    s = load_settings(backend="local", home=Path("/tmp/unused"))
    max_rows = max_rows or s.train_max_rows
    ids, where = places(n)
    H = s.horizon
    oldest = AS_OF - dt.timedelta(days=days) + HOUR
    history_start = oldest + dt.timedelta(hours=HISTORY_HOURS)
    holdout_end = AS_OF - dt.timedelta(hours=H)
    block = dt.timedelta(days=s.train_holdout_days)
    holdout_start = holdout_end - block
    steps: dict[str, dict[str, int]] = {}
    steps["fit"] = fit_reads(ids, where, history_start, holdout_start, max_rows, H, observed)
    steps["holdout"] = selection_reads(
        ids, where, holdout_start, holdout_end, HOLDOUT_ROWS, H, observed
    )
    folds = {"batches": 0, "reads": 0}
    for k in range(s.train_backtest_folds, 0, -1):
        origin = holdout_start - k * (block + dt.timedelta(hours=H))
        budget = max(max_rows // 4, 1000)
        got = fit_reads(ids, where, history_start, origin, budget, H, observed)
        test = selection_reads(ids, where, origin, origin + block, HOLDOUT_ROWS, H, observed)
        folds = {key: folds[key] + got[key] + test[key] for key in folds}
    steps["backtest folds, reading (before)"] = folds
    steps["production score (with a production model)"] = steps["holdout"]
    steps["drift references and sample"] = {"batches": 0, "reads": 24 + 1}
    steps["summary, places, CAMS check"] = {"batches": 0, "reads": 2 + 1 + 1}
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--observed", type=float, default=0.95)
    parser.add_argument("--max-rows", type=int, help="row budget (default: the setting's)")
    args = parser.parse_args()
    print("| locations | step | batches | reads |")
    print("|---:|---|---:|---:|")
    for n in args.locations:
        for step, got in run_reads(n, args.days, args.observed, args.max_rows).items():
            print(f"| {n:,} | {step} | {got['batches']} | {got['reads']} |")


if __name__ == "__main__":
    main()
