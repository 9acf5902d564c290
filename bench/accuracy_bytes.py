"""Bytes billed by the monitor's accuracy reads at the code checked out, beside an earlier
commit's, billed as bench/bytes_billed.py bills (its `billed`, a capture's table sizes).

    PYTHONPATH=$PWD .venv/bin/python bench/accuracy_bytes.py --capture bench-bytes-capture.json \\
        --before a42a430

A capture keeps the SQL its replay ran, so reusing one for bytes_billed.py bills the code
of that day; this renders the accuracy condition's queries anew (the parameters of the
capture's monitor run: as_of, and for code that tells new places by the training window
the production version and its cut-off; one target) from `common.monitoring.signals` of
each code, read from git for `--before`: `accuracy` and `served_accuracy` where it has
both (two reads, before 6204426), else `accuracy` alone. A capture made by code that no
longer passes the cut-off (new places told by their own weights) has none: `--cutoff-days`
before as_of stands in (it moves which day partition is read, not how many).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bytes_billed import RUNS_PER_MONTH, TIB, TableSize, billed, load_params  # noqa: E402


class _Rendered(Exception):
    """Raised by `_Recorder.query`: the query is kept, never run."""


class _Recorder:
    def __init__(self) -> None:
        self.queries: list[tuple[str, dict[str, Any]]] = []

    def query(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        self.queries.append((sql, dict(params or {})))
        raise _Rendered


def rendered(fn: Any, *args: Any) -> list[tuple[str, dict[str, Any]]]:
    """The SQL and parameters `fn(warehouse, *args)` sends (its first query)."""
    recorder = _Recorder()
    with contextlib.suppress(_Rendered):
        fn(recorder, *args)
    return recorder.queries


def signals_at(commit: str, folder: Path) -> ModuleType:
    """common.monitoring.signals as it was at `commit` (its imports from this checkout)."""
    text = subprocess.run(
        ["git", "show", f"{commit}:common/monitoring/signals.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = folder / "signals_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("signals_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accuracy_reads(
    module: Any, as_of: dt.datetime, target: str, version: str, cutoff: dt.datetime
) -> list[tuple[str, dict[str, Any]]]:
    """The accuracy condition's reads of one code's signals module: two before 6204426,
    one since (taking the production version's cut-off while new places were told by the
    training window)."""
    if hasattr(module, "served_accuracy"):
        out = rendered(module.accuracy, as_of, [target])
        return out + rendered(module.served_accuracy, as_of, target, version, cutoff)
    if "production" in inspect.signature(module.accuracy).parameters:
        return rendered(module.accuracy, as_of, [target], {target: (version, cutoff)})
    return rendered(module.accuracy, as_of, [target])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, required=True, help="bytes_billed.py's capture")
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--price-per-tib", type=float, default=6.25)
    parser.add_argument("--cutoff-days", type=float, default=1.0, help="when none captured")
    args = parser.parse_args()
    from common.monitoring import signals

    kept = json.loads(args.capture.read_text())
    tables = {k: TableSize(**v) for k, v in kept["tables"].items()}
    read = [
        q
        for q in kept["queries"]
        if q["function"] == "monitor"
        and "issued_after" in q["params"]
        and "hours_after" in q["params"]
    ]
    served = next((q for q in read if "seen_after" in q["params"]), read[0])
    params = load_params(served["params"])
    as_of = dt.datetime.fromisoformat(served["as_of"])
    version = params.get("version", "production")
    cutoff = params.get("cutoff", as_of - dt.timedelta(days=args.cutoff_days))
    target = "pm2_5"
    with tempfile.TemporaryDirectory() as tmp:
        old = signals_at(args.before, Path(tmp))
        before = _accuracy_reads(old, as_of, target, version, cutoff)
    now = _accuracy_reads(signals, as_of, target, version, cutoff)
    runs = RUNS_PER_MONTH["monitor"]
    print("| locations | code | queries | GB billed per run | TiB per month | $ per month |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in args.sizes:
        for name, queries in ((args.before, before), ("this", now)):
            gb = [billed(sql, p, as_of, n, tables)["bytes"] / 1e9 for sql, p in queries]
            month = sum(gb) * 1e9 * runs / TIB
            parts = " + ".join(f"{g:,.2f}" for g in gb)
            print(
                f"| {n:,} | {name} | {len(gb)} | {parts} | {month:,.2f} "
                f"| {month * args.price_per_tib:,.0f} |"
            )


if __name__ == "__main__":
    main()
