"""Bytes billed by the monitor's accuracy reads at the code checked out, beside an earlier
commit's, billed as bench/bytes_billed.py bills (its `billed`, a capture's table sizes).

    PYTHONPATH=$PWD .venv/bin/python bench/accuracy_bytes.py --capture bench-bytes-capture.json \\
        --before a42a430

A capture keeps the SQL its replay ran, so reusing one for bytes_billed.py bills the code
of that day; this renders the accuracy condition's queries anew (the parameters of the
capture's monitor run: as_of, the production version and its cut-off; one target) from
`common.monitoring.signals` of each code: `--before`'s `accuracy` and `served_accuracy`
(read from git), and this code's `accuracy`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, required=True, help="bytes_billed.py's capture")
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--price-per-tib", type=float, default=6.25)
    args = parser.parse_args()
    from common.monitoring import signals

    kept = json.loads(args.capture.read_text())
    tables = {k: TableSize(**v) for k, v in kept["tables"].items()}
    served = next(
        q for q in kept["queries"] if q["function"] == "monitor" and "seen_after" in q["params"]
    )
    params = load_params(served["params"])
    as_of = dt.datetime.fromisoformat(served["as_of"])
    version, cutoff = params["version"], params["cutoff"]
    target = "pm2_5"
    with tempfile.TemporaryDirectory() as tmp:
        old = signals_at(args.before, Path(tmp))
        before = rendered(old.accuracy, as_of, [target])
        before += rendered(old.served_accuracy, as_of, target, version, cutoff)
    now = rendered(signals.accuracy, as_of, [target], {target: (version, cutoff)})
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
