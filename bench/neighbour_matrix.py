"""The neighbour matrix alone at N synthetic places, before and after the NEIGHBOUR_K cap.

    nice -n 19 .venv/bin/python bench/neighbour_matrix.py --locations 100000 [--before REV]

Places as bench/scale_train.py generates them (same seed and 24 x 30 degree box: ~570 others
within 100 km of each at 100,000). Each implementation runs in its own child process, so its
peak RSS (VmHWM) is its own: `before` is common/forecasting/neighbours.py at REV (default
a2f744a, the uncapped all-pairs build), `after` this checkout's. Printed: wall time, peak RSS,
RSS before the build (imports and places), stored pairs and neighbours per row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def child(module_path: str, n: int) -> dict:
    """Build the matrix once over every place; report time and memory."""
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from scale_train import BOX

    spec = importlib.util.spec_from_file_location("nb_under_test", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(n)  # as scale_train.setup draws them
    ids = [f"scale-{i:06d}" for i in range(n)]
    (lat0, lat1), (lon0, lon1) = BOX
    lat = rng.uniform(lat0, lat1, n).round(4)
    lon = rng.uniform(lon0, lon1, n).round(4)
    places = pd.DataFrame({"location_id": ids, "latitude": lat, "longitude": lon})
    before = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    m = module.neighbour_matrix(ids, places)
    seconds = time.perf_counter() - t0
    per_row = np.diff(m.indptr)
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(_rss_kb("VmHWM") / 1024),
        "rss_before_build_mb": round(before / 1024),
        "pairs": int(m.nnz),
        "per_row_mean": round(float(per_row.mean()), 1),
        "per_row_max": int(per_row.max()),
        "matrix_mb": round((m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--locations", type=int, default=100_000)
    ap.add_argument("--before", default="a2f744a")
    ap.add_argument("--child", nargs=2, metavar=("MODULE", "N"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "neighbours_before.py"
        old.write_text(
            subprocess.run(
                ["git", "show", f"{args.before}:common/forecasting/neighbours.py"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        now = ROOT / "common" / "forecasting" / "neighbours.py"
        rows = {}
        for name, path in (("before", old), ("after", now)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), str(args.locations)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows[name] = json.loads(out.strip().splitlines()[-1])
    keys = list(rows["before"])
    print(f"{'':22}{'before':>12}{'after':>12}")
    for k in keys:
        print(f"{k:22}{rows['before'][k]:>12}{rows['after'][k]:>12}")


if __name__ == "__main__":
    main()
