"""Benchmark: how often the drift condition fires on a year of normal Beijing weather.

    .venv/bin/python bench/drift_beijing.py [--every-hours 6]

Backfills ../shared/data/beijing-multisite (as bench/train_beijing.py does), takes the drift
reference the train job would store for a model trained on 2016-03-01 (three years of
inputs: whole-window deciles, each month's deciles, the training weeks' own PSI) and
evaluates the drift condition's PSI rule on the week before every --every-hours of the
following year (2016-03-01 .. 2017-02-28), both ways: the whole window's deciles with the
fixed 0.4 / 0.8 levels (before), and the window's month with each input's levels raised to
its training weeks' own PSI (now). Prints the share of ok / warn / alert and, for the
alerts, which input and month.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import train_beijing as tb  # noqa: E402

CUT = pd.Timestamp("2016-03-01", tz="UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every-hours", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aircast-drift-") as tmp:
        home = Path(tmp) / "home"
        tb.backfill(home)
        os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local")
        from common.forecasting.features import FeatureSpec, grid_columns
        from common.forecasting.versions import DriftReferences
        from common.monitoring import drift
        from common.monitoring import thresholds as th
        from common.monitoring.drift_condition import drift_worst
        from common.runtime.services import get_services

        svc = get_services()
        columns = grid_columns(FeatureSpec(svc.settings.target, svc.settings.horizon, False))
        obs = svc.warehouse.query(
            "SELECT * FROM observations WHERE ts > @start AND ts <= @end",
            {"start": tb.DATA_START - dt.timedelta(hours=1), "end": tb.DATA_END},
        )
    obs["ts"] = pd.to_datetime(obs["ts"], utc=True)
    train = obs[obs["ts"] <= CUT]  # the 8 stations fit in memory: the train job's own rows
    refs = DriftReferences(
        reference=drift.reference(train, columns),
        reference_by_month=drift.monthly_reference(train, columns),
    )
    natural = drift.natural_psi(train, refs, th.DRIFT_WINDOW_HOURS, th.NATURAL_PSI_QUANTILE)
    window = pd.Timedelta(hours=th.DRIFT_WINDOW_HOURS)
    before: Counter[str] = Counter()
    now: Counter[str] = Counter()
    alerts: Counter[tuple[str, str]] = Counter()
    ends = pd.date_range(CUT, tb.DATA_END, freq=f"{args.every_hours}h", tz="UTC")
    for end in ends:
        recent = obs[(obs["ts"] > end - window) & (obs["ts"] <= end)]
        whole = drift.psi_by_column(refs.reference, recent)
        before[th.LEVELS["drift"].state(max(whole.values()))] += 1
        ref, _ = drift.pick_reference(refs, (end - window).to_pydatetime(), end.to_pydatetime())
        psi = drift.psi_by_column(ref, recent)
        worst, levels = drift_worst(psi, natural)
        assert worst is not None, "no comparable inputs in the window"
        state = levels.state(psi[worst])
        now[state] += 1
        if state == "alert":
            alerts[(f"{end:%Y-%m}", worst)] += 1
    print(f"{len(ends)} weekly windows, one every {args.every_hours} h")
    for name, counts in (("whole window, fixed levels", before), ("month, own levels", now)):
        shares = ", ".join(f"{s} {counts[s] / len(ends):.0%}" for s in ("ok", "warn", "alert"))
        print(f"{name}: {shares}")
    print("training weeks' own PSI (quantile / max):")
    for c, v in natural.items():
        print(f"  {c}: {v.quantile:.2f} / {v.max:.2f}")
    print("alerts now, by month and input:")
    for (month, column), n in sorted(alerts.items()):
        print(f"  {month} {column}: {n}")


if __name__ == "__main__":
    main()
