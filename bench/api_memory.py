"""The api's memory holding every snapshot part, before and after a change, side by side.

    nice -n 10 .venv/bin/python bench/api_memory.py [--locations 10000 100000] \
        [--per-part 10000] [--before 04abd02] [--threads 1]

For each network size, the parts are written once (tests.api_fixtures.make_snapshot shapes:
24 horizons, 48 hours of observations and of hindcasts per location; shard 0 carries the
network's per-location accuracy, as predict publishes it) to a local store, one part per
--per-part locations. Then, for each variant, a fresh process (the `--before` revision's
`common`, extracted with `git archive`, or this tree's) makes the api, loads every part and
looks up every location once through the WSGI app (`GET /v1/forecasts/{id}`, what the end-
to-end benchmark's api did), reporting its RSS after start, after loading the parts and
after the lookups, its peak (VmHWM), and a digest of every answer's bytes: the variants
must answer the same bytes.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "04abd02"  # the last revision holding each part parsed whole (`Snapshot`)


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(tree: str, artifacts: str, locations: int, shards: int, threads: int) -> None:
    """Run in a fresh process with `tree`'s `common`: load every part, look up every id
    (from `threads` threads: the parts then load side by side, as under a server's)."""
    sys.path.insert(0, tree)
    from common.core.config import load_settings
    from common.serving.api import create_app
    from common.storage.local import LocalStore

    home = Path(tempfile.mkdtemp(prefix="aircast-apimem-"))
    settings = load_settings(backend="local", home=home).model_copy(
        update={"predict_shards": shards, "api_parts_in_memory": max(shards, 16)}
    )
    app = create_app(settings, LocalStore(Path(artifacts)))
    client = app.test_client()
    assert client.get("/openapi.json").status_code == 200  # warm: routes, models
    gc.collect()
    out: dict[str, Any] = {"start_mib": _status_mib("VmRSS")}
    t = time.perf_counter()
    api = app.extensions["aircast_api"]
    with ThreadPoolExecutor(threads) as pool:
        loaded = pool.map(lambda k: api.parts.part(k).get(), range(shards))
        served = sum(1 for serving in loaded if serving is not None)
    out["load_s"] = time.perf_counter() - t
    assert served == shards, f"{served} of {shards} parts served"
    gc.collect()
    out["parts_mib"] = _status_mib("VmRSS")
    digest = hashlib.sha256()
    t = time.perf_counter()

    def get(i: int) -> bytes:
        r = app.test_client().get(f"/v1/forecasts/loc-{i:06d}")
        assert r.status_code == 200, r.data[:200]
        return r.data

    with ThreadPoolExecutor(threads) as pool:
        for body in pool.map(get, range(locations)):  # in order: the digest is comparable
            digest.update(body)
    out["lookups_s"] = time.perf_counter() - t
    for url in ("/v1/metrics", "/v1/locations?lat=10&lon=20&limit=5"):
        digest.update(client.get(url).data)
    gc.collect()
    out["after_lookups_mib"] = _status_mib("VmRSS")
    out["peak_mib"] = _status_mib("VmHWM")
    out["digest"] = digest.hexdigest()[:16]
    print(json.dumps(out))


def write_parts(artifacts: Path, locations: int, shards: int) -> int:
    """The parts of a `locations` network in `shards` parts; their total bytes."""
    sys.path.insert(0, str(ROOT))
    from common.core.sharding import shard_of
    from common.forecasting.snapshot import snapshot_key
    from common.storage.local import LocalStore
    from tests.api_fixtures import make_snapshot

    store = LocalStore(artifacts)
    ids = tuple(f"loc-{i:06d}" for i in range(locations))
    network = {i: 4.0 + (k % 13) for k, i in enumerate(ids)}
    total = 0
    for k in range(shards):
        mine = tuple(i for i in ids if shard_of(i, shards) == k)
        part = make_snapshot(locations=mine, skipped=())
        accuracy = part.accuracy
        assert accuracy is not None
        accuracy = accuracy.model_copy(update={"network": True, "by_location": network})
        data = part.model_copy(
            update={"shard": k, "shards": shards, "accuracy": accuracy if k == 0 else None}
        ).model_dump_json()
        store.put(snapshot_key(k, shards), data.encode())
        total += len(data)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locations", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--per-part", type=int, default=10_000, help="locations per part")
    ap.add_argument("--before", default=DEFAULT_BEFORE, help="git revision to compare with")
    ap.add_argument("--threads", type=int, default=1, help="loading and looking up side by side")
    ap.add_argument("--child", nargs=5, metavar=("TREE", "ARTIFACTS", "LOCATIONS", "SHARDS", "T"))
    args = ap.parse_args()
    if args.child:
        tree, artifacts, locations, shards, threads = args.child
        child(tree, artifacts, int(locations), int(shards), int(threads))
        return
    tmp = Path(tempfile.mkdtemp(prefix="aircast-apimem-"))
    before = tmp / "before"
    before.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.before, "common"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    variants = {f"before ({args.before})": str(before), "after (this tree)": str(ROOT)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env.pop("PYTHONPATH", None)  # each child imports its own tree's `common`
    rows = []
    for n in args.locations:
        shards = max(1, -(-n // args.per_part))
        artifacts = tmp / f"parts-{n}"
        size = write_parts(artifacts, n, shards)
        print(f"{n:,} locations in {shards} parts: {size / 2**20:.0f} MiB of JSON", flush=True)
        for name, tree in variants.items():
            command = [sys.executable, __file__, "--child", tree, str(artifacts), str(n)]
            done = subprocess.run(
                [*command, str(shards), str(args.threads)],
                env=env,
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            if done.returncode:
                raise SystemExit(f"{name} at {n}: {done.stderr[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((n, shards, size, name, r))
            print(f"  {name}: {r}", flush=True)
    print()
    print(
        "| locations (parts) | variant | RSS started MiB | + parts loaded MiB | per location KB "
        "| after every lookup MiB | peak MiB | load s | answers digest |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for n, shards, _, name, r in rows:
        parts = r["parts_mib"] - r["start_mib"]
        print(
            f"| {n:,} ({shards}) | {name} | {r['start_mib']:.0f} | {parts:.0f} "
            f"| {parts * 1024 / n:.1f} | {r['after_lookups_mib']:.0f} | {r['peak_mib']:.0f} "
            f"| {r['load_s']:.1f} | {r['digest']} |"
        )


if __name__ == "__main__":
    main()
