"""What reading one serving snapshot part costs, by its number of locations.

    .venv/bin/python bench/snapshot_read.py [--sizes 100 1000 10000] [--repeats 5]

The api pays it once per change of the part (its `SnapshotCache`); `POST /v1/predict`
naming a `location_id` paid it on every call until it took the place from that cache.
A part is shaped like predict's (tests.api_fixtures.make_snapshot: 24 horizons, a day of
observations and hindcasts per location), written to a local store and read and
validated whole, as the api does; the median of --repeats reads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot  # noqa: E402
from common.storage.local import LocalStore  # noqa: E402
from tests.api_fixtures import make_snapshot, publish  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| locations in the part | size MB | read and validate, median ms |")
    print("|---:|---:|---:|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalStore(Path(tmp))
            publish(store, make_snapshot(locations=tuple(f"loc-{i:06d}" for i in range(n))))
            size = len(store.get(SNAPSHOT_KEY))
            seconds = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                Snapshot.model_validate_json(store.get(SNAPSHOT_KEY))
                seconds.append(time.perf_counter() - t)
        print(f"| {n:,} | {size / 1e6:.1f} | {statistics.median(seconds) * 1000:.0f} |")


if __name__ == "__main__":
    main()
