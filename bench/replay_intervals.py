"""The adaptive interval offsets on a finished replay: the coverage the replay's forecasts
would have had with the offsets predict now steps, hour by hour.

    .venv/bin/python bench/replay_intervals.py HOME [--eta 0.005 ...] [--pool 0 ...] [--until ISO]

HOME is a replay's home (`aircast replay`) run before the offsets existed, or with
AIRCAST_INTERVAL_ADAPT_ETA=0. The offsets change nothing but p10/p90 - not the median, the
gate or what is trained - so the replay's stored forecasts and observations are all that
is needed: at each issue hour the offsets are stepped (`common.forecasting.adaptation`,
the rule predict runs) from the forecasts verified by then, each judged against the bounds
it would have been served with, and the issue hour's bounds are moved out by them. Prints
coverage by horizon for each period, as served and with each eta.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from model_study import Realised, _adaptive, _interval_score, _windows  # noqa: E402


def load(home: Path, target: str) -> pd.DataFrame:
    """Every forecast of `target` (one per location, issue time and hour: the newest row,
    the one served) with its actual, read through the warehouse adapter and its views."""
    from common.core.config import load_settings
    from common.core.schema import VARIABLES
    from common.warehouse import open_warehouse

    if target not in VARIABLES:  # a column name below
        raise SystemExit(f"unknown target {target!r}")
    with tempfile.TemporaryDirectory() as tmp:  # a copy: the replay's file may be locked
        shutil.copy(home / "warehouse.duckdb", Path(tmp) / "warehouse.duckdb")
        warehouse = open_warehouse(load_settings(backend="local", home=tmp))
        frame = warehouse.query(
            "WITH f AS (SELECT * FROM forecasts WHERE target = @target "
            "AND yhat_lower IS NOT NULL QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, "
            "issued_at, target_ts ORDER BY created_at DESC, run_id DESC) = 1) "
            "SELECT f.issued_at, f.target_ts, f.horizon_h, f.yhat, f.yhat_lower, f.yhat_upper, "
            f"o.{target} AS actual FROM f JOIN observations AS o "
            "ON o.location_id = f.location_id AND o.ts = f.target_ts "
            f"WHERE o.{target} IS NOT NULL",
            {"target": target},
        )
        warehouse.close()
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--target", default="pm2_5")
    parser.add_argument("--eta", type=float, nargs="*", default=[0.005, 0.01, 0.02, 0.05])
    parser.add_argument(
        "--pool", type=int, nargs="*", default=[0], help="horizons either side pooled per step"
    )
    parser.add_argument("--from", dest="start", default="2016-03-01T00:00Z")
    parser.add_argument(
        "--period",
        nargs=2,
        action="append",
        metavar=("NAME", "UNTIL"),
        help="a period of target hours up to UNTIL (default: two weeks, all)",
    )
    args = parser.parse_args()
    f = load(args.home, args.target)
    f = f[pd.to_datetime(f["issued_at"], utc=True) >= pd.Timestamp(args.start)]
    issued = pd.to_datetime(f["issued_at"], utc=True).to_numpy().astype("datetime64[h]")
    target = pd.to_datetime(f["target_ts"], utc=True).to_numpy().astype("datetime64[h]")
    h = f["horizon_h"].to_numpy(int)
    H = int(h.max())
    y = np.log1p(f["actual"].to_numpy(float))
    med = np.log1p(f["yhat"].to_numpy(float))
    lo, hi = np.log1p(f["yhat_lower"].to_numpy(float)), np.log1p(f["yhat_upper"].to_numpy(float))
    periods = args.period or [
        ("first two weeks", "2016-03-15T00:00Z"),
        ("all", "2100-01-01T00:00Z"),
    ]
    sel = {
        name: (pd.to_datetime(f["target_ts"], utc=True) <= pd.Timestamp(until, tz="UTC")).to_numpy()
        for name, until in periods
    }
    variants = {"as served (no offsets)": (lo, hi)}
    realised = Realised(lo - y, y - hi, h, issued, target, H)
    for pool in args.pool:
        for eta in args.eta:
            add_lo, add_hi = _adaptive(realised, eta, pool)
            name = f"adaptive offsets, eta {eta}" + (f", pooled +-{pool} h" if pool else "")
            variants[name] = (np.minimum(lo - add_lo, med), np.maximum(hi + add_hi, med))
    print(f"{len(f)} forecasts issued from {args.start}, {H} horizons\n")
    print(
        "| intervals | period | coverage | min..max by h | h=1 | h=6 | h=12 | h=18 | h=24 "
        "| h with coverage < 0.75 | mean width | interval score | two-week windows in 0.75..0.85 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (a, b) in variants.items():
        covered = (y >= a) & (y <= b)
        actual = np.expm1(y)
        p10, p90 = np.clip(np.expm1(a), 0, None), np.expm1(b)
        width, score = p90 - p10, _interval_score(p10, p90, actual)
        for period, m in sel.items():
            by_h = [covered[m & (h == k)].mean() for k in range(1, H + 1)]
            low = [k for k in range(1, H + 1) if by_h[k - 1] < 0.75]
            ok, n = _windows(covered, m, h, issued, H)
            print(
                f"| {name} | {period} | {covered[m].mean():.3f} "
                f"| {min(by_h):.3f}..{max(by_h):.3f} | "
                + " | ".join(f"{by_h[k - 1]:.3f}" for k in (1, 6, 12, 18, 24))
                + f" | {_ranges(low)} | {width[m].mean():.1f} | {score[m].mean():.1f} "
                f"| {ok} of {n} |",
                flush=True,
            )


def _ranges(hs: list[int]) -> str:
    """[8, 9, 10, 12] -> '8-10, 12' ('none' when empty)."""
    if not hs:
        return "none"
    out: list[str] = []
    start: int | None = hs[0]
    for a, b in zip(hs, [*hs[1:], None], strict=True):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


if __name__ == "__main__":
    main()
