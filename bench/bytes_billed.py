"""Bytes billed per run on BigQuery (on-demand), per function and query, at N locations.

    .venv/bin/python bench/bytes_billed.py --sizes 1000 100000 \\
        [--train-queries 1000=q-1000.jsonl 100000=q-100000.jsonl] [--price-per-tib 6.25]

The emulator answers every query and dry run with 0 bytes processed (bqemulator 1.4,
`jobs/executor.py`), so the bytes are computed the way BigQuery bills on-demand queries:
the columns each query reads, of the partitions it scans, at the sizes of BigQuery's data
types (STRING 2 + UTF-8 bytes, INT64 / FLOAT64 / TIMESTAMP 8, BOOL 1, NULL 0), with 10 MB
minimum per table referenced and per query.

1. Queries: the schedules replayed locally (DuckDB, the synthetic source's places) for one
   simulated day after a warm-up, predict as CAPTURE_SHARDS shard jobs as a sharded
   deployment runs it; every `Warehouse.query` of each run is kept with its parameters
   (one ingest and monitor run of the replay's last hour, its predict shard 0 and shard 1,
   and the daily train). At N locations predict is ceil(N / 10,000) shards: shard 0's
   queries once (it alone computes the network's accuracy) and shard 1's for each other
   shard. The replay runs an hour's shards one after another, shard 1 first: a shard that
   finds the hour's interval offsets and weights already stepped reads them instead, which
   shards fired side by side do not, so what shard 1 ran and shard 0 did not (the steps)
   is counted for shard 0 too: the worst case. A train run's queries depend on the
   network's size (the sampled reads
   above 500,000 cells), so `--train-queries` takes those `bench/scale_train.py --queries`
   wrote at that size.
2. Sizes: rows written per day to each table during the replayed day, per location for
   tables with a `location_id` (scaled to N), held for the table's retention (its
   partition expiry) or a year; bytes per row of each column measured on that data.
3. Per query (sqlglot): views expanded, stars qualified against common.core.schema,
   unused columns pruned and filters pushed down as an optimiser does
   (`pushdown_projections`, `pushdown_predicates`); then each scan of a base table bills
   its remaining columns over the day partitions its filters on the partition column
   bound (evaluated with the run's parameters), or every partition held when none do.

An upper bound where BigQuery reads less: block pruning on clustered columns (a predict
shard's `location_id IN UNNEST(@ids)` on tables clustered by location_id) is not
counted, so each predict shard bills whole partitions for its own scans.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1024**2
TIB = 1024**4
MIN_BILLED = 10 * MB  # per table referenced and per query
HELD_DAYS = 365  # a year of operation: the days a table holds (or its partition expiry)
PER_SHARD = 10_000  # locations per predict shard (docs/scale.md)
CAPTURE_SHARDS = 2  # the replay's predict shards: shard 0 and one other, as each of N runs
START = dt.datetime(2024, 2, 28, 0, tzinfo=dt.UTC)  # the replayed day (any past day)
RUNS_PER_MONTH = {"ingest": 24 * 30, "predict": 24 * 30, "monitor": 24 * 30, "train": 30}
TYPE_BYTES = {"FLOAT64": 8, "INT64": 8, "TIMESTAMP": 8, "BOOL": 1}
STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")


@dataclass
class TableSize:
    """A table's steady state: rows per day (per location if `per_location`), days held,
    bytes per row of each column."""

    per_location: bool
    rows_per_day: float
    rows_now: float
    days_held: int | None  # None: not partitioned (every query reads the whole table)
    column_bytes: dict[str, float]

    def rows(self, n: int, days: float | None) -> float:
        scale = n if self.per_location else 1
        if self.days_held is None:
            return (self.rows_now + self.rows_per_day * HELD_DAYS) * scale
        return self.rows_per_day * min(days or self.days_held, self.days_held) * scale


def capture(home: Path) -> tuple[list[dict[str, Any]], dict[str, TableSize]]:
    """Replay the schedules over one day after a warm-up; the queries of the last hour's
    runs (and the day's train) and the tables' sizes per day."""
    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_LOG_LEVEL="ERROR")
    # A few places and four weeks: the demo's small fit (docs/usage.md); train's queries at
    # scale come from --train-queries.
    for k, v in {"AIRCAST_TRAIN_MAX_ROWS": "6000", "AIRCAST_TRAIN_HOLDOUT_DAYS": "3",
                 "AIRCAST_TRAIN_BACKTEST_FOLDS": "0"}.items():  # fmt: skip
        os.environ.setdefault(k, v)
    os.environ["AIRCAST_PREDICT_SHARDS"] = str(CAPTURE_SHARDS)
    from common.runtime.services import get_services
    from common.scheduling.local import InProcessInvoker, replay
    from common.scheduling.schedules import SCHEDULES, expand
    from common.warehouse.base import Warehouse

    log: list[dict[str, Any]] = []
    plain_query = Warehouse.query

    def kept(self: Warehouse, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        log.append({"sql": sql, "params": dict(params or {})})
        return plain_query(self, sql, params)

    Warehouse.query = kept  # type: ignore[method-assign]
    runs: list[dict[str, Any]] = []

    def attempt(a: Any) -> None:
        taken = sum(len(r["queries"]) for r in runs)
        shard = int(a.schedule.rsplit("-shard-", 1)[1]) if "-shard-" in a.schedule else None
        runs.append(
            {"function": a.function, "shard": shard, "as_of": a.as_of, "queries": log[taken:]}
        )

    invoker = InProcessInvoker()
    # Shard 1 before shard 0 (they fire at the same minute; module doc, step 1).
    schedules = tuple(sorted(expand(SCHEDULES, CAPTURE_SHARDS), key=_shard_1_first))
    replay(invoker, START - dt.timedelta(hours=2), START, warmup=dt.timedelta(days=28),
           schedules=schedules)  # fmt: skip
    svc = get_services()
    before = table_rows(svc)
    log.clear()
    replay(invoker, START, START + dt.timedelta(hours=23, minutes=59), on_attempt=attempt,
           schedules=schedules)  # fmt: skip
    after = table_rows(svc)
    Warehouse.query = plain_query  # type: ignore[method-assign]
    chosen: dict[tuple[str, int | None], dict[str, Any]] = {}
    for r in runs:  # the last run of each function (and predict shard)
        chosen[(r["function"], r["shard"])] = r
    queries = [
        {
            "function": f,
            "shard": k,
            "as_of": r["as_of"].isoformat(),
            **q,
            "params": dict(q["params"]),
        }
        for (f, k), r in chosen.items()
        for q in r["queries"]
    ]
    locations = int(svc.warehouse.query("SELECT COUNT(*) AS n FROM current_locations")["n"][0])
    return queries, sizes(svc, before, after, locations)


def _shard_1_first(schedule: Any) -> int:
    """A sort key that puts predict shard 0 last: the order only breaks ties between jobs
    firing at the same minute, which only the shards do, so shard 1 fires first."""
    return 1 if schedule.name.endswith("-shard-0") else 0


def table_rows(svc: Any) -> dict[str, int]:
    from common.core.schema import TABLES

    return {
        name: int(svc.warehouse.query(f"SELECT COUNT(*) AS n FROM {name}")["n"][0])
        for name in TABLES
    }


def sizes(
    svc: Any, before: dict[str, int], after: dict[str, int], locations: int
) -> dict[str, TableSize]:
    """Each table's rows per day (from the replayed day) and bytes per row per column
    (BigQuery's data sizes, on the rows the replay left)."""
    from common.core.schema import TABLES

    out = {}
    for name, table in TABLES.items():
        per_location = any(c.name == "location_id" for c in table.columns)
        div = locations if per_location else 1
        exprs = []
        for c in table.columns:
            # STRING: characters for bytes (the ids and names are ASCII)
            size = f"2 + LENGTH({c.name})" if c.type == "STRING" else str(TYPE_BYTES[c.type])
            exprs.append(f"AVG(CASE WHEN {c.name} IS NULL THEN 0 ELSE {size} END) AS {c.name}")
        row = svc.warehouse.query(f"SELECT {', '.join(exprs)} FROM {name}")
        column_bytes = {c: float(row[c][0]) if after[name] else 0.0 for c in row.columns}
        held = None
        if table.partition_by:
            held = min(table.retention_days or HELD_DAYS, HELD_DAYS)
        out[name] = TableSize(
            per_location,
            (after[name] - before[name]) / div,
            after[name] / div,
            held,
            column_bytes,
        )
    return out


def load_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as written to JSON (timestamps as text) back to Python values."""
    out = {}
    for k, v in params.items():
        if isinstance(v, str) and STAMP.match(v):
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        out[k] = v
    return out


def scans(sql: str) -> list[tuple[str, set[str], list[Any]]]:
    """Each scan of a base table in `sql`: (table, columns read, filter conjuncts), after
    views are expanded, columns pruned and filters pushed down."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.normalize import normalize
    from sqlglot.optimizer.pushdown_predicates import pushdown_predicates
    from sqlglot.optimizer.pushdown_projections import pushdown_projections
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import traverse_scope

    from common.core.schema import TABLES
    from common.core.views import VIEWS

    schema: dict[str, object] = {
        t.name: {c.name: c.type for c in t.columns} for t in TABLES.values()
    }
    views: dict[str, Any] = {n: sqlglot.parse_one(v.sql, read="bigquery") for n, v in VIEWS.items()}
    tree = sqlglot.parse_one(sql, read="bigquery")
    for _ in range(4):  # views over views
        tree = exp.expand(tree, views, dialect="bigquery")
    tree = qualify(tree, schema=schema, dialect="bigquery", validate_qualify_columns=False)
    tree = pushdown_projections(tree, schema=schema)
    tree = pushdown_predicates(normalize(tree), dialect="bigquery")
    out = []
    for scope in traverse_scope(tree):
        for alias, (_, source) in scope.selected_sources.items():
            if isinstance(source, exp.Table) and source.name in TABLES:
                cols = {c.name for c in scope.columns if c.table == alias}
                where = scope.expression.args.get("where")
                conj = list(where.this.flatten()) if where else []
                out.append((source.name, cols, [c for c in conj if _on(c, alias)]))
    return out


def _on(condition: Any, alias: str) -> bool:
    from sqlglot import exp

    return all(c.table == alias for c in condition.find_all(exp.Column))


def partition_days(
    column: str, conjuncts: list[Any], params: dict[str, Any], as_of: dt.datetime
) -> float | None:
    """Day partitions the filters on `column` bound the scan to (None: unbounded below;
    unbounded above: up to a day after the run's as_of, the furthest any table is filled)."""
    import duckdb
    from sqlglot import exp

    lo: dt.datetime | None = None
    hi: dt.datetime | None = None
    for c in conjuncts:
        if not isinstance(c, exp.GT | exp.GTE | exp.LT | exp.LTE | exp.Between):
            continue
        if not (isinstance(c.this, exp.Column) and c.this.name == column):
            continue
        bounds = [c.args["low"], c.args["high"]] if isinstance(c, exp.Between) else [c.expression]
        got = [_evaluate(b, params, duckdb, exp) for b in bounds]
        values = [v for v in got if v is not None]
        if len(values) != len(got):
            continue
        if isinstance(c, exp.Between):
            lo, hi = _max(lo, values[0]), _min(hi, values[1])
        elif isinstance(c, exp.GT | exp.GTE):
            lo = _max(lo, values[0])
        else:
            hi = _min(hi, values[0])
    if lo is None:
        return None
    hi = hi or as_of + dt.timedelta(days=1)
    first, last = lo.date(), hi.date()
    return max(1, (last - first).days + 1)


def _evaluate(node: Any, params: dict[str, Any], duckdb: Any, exp: Any) -> dt.datetime | None:
    """A bound without columns, with the run's parameters, as DuckDB computes it."""
    if node.find(exp.Column):
        return None
    node = exp.Paren(this=node.copy())  # a root that parameters can be replaced under
    for p in list(node.find_all(exp.Parameter)):
        value = params.get(p.name)
        if not isinstance(value, dt.datetime):
            return None
        utc = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
        p.replace(exp.cast(exp.Literal.string(utc), "TIMESTAMP"))
    try:
        value = duckdb.sql(f"SELECT {node.sql('duckdb')} AS v").fetchone()[0]
    except duckdb.Error:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _max(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None else max(a, b)


def _min(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None else min(a, b)


def billed(
    sql: str, params: dict[str, Any], as_of: dt.datetime, n: int, tables: dict[str, TableSize]
) -> dict:
    """Bytes billed by one query at N locations, and what it scans."""
    from common.core.schema import TABLES

    per_table: dict[str, float] = defaultdict(float)
    days_read: dict[str, float | None] = {}
    for name, cols, conjuncts in scans(sql):
        size = tables[name]
        part = TABLES[name].partition_by
        days = partition_days(part, conjuncts, params, as_of) if part else None
        rows = size.rows(n, days)
        per_table[name] += rows * sum(size.column_bytes.get(c, 8) for c in cols)
        days_read[name] = days if part else None
    total = max(MIN_BILLED, sum(max(MIN_BILLED, b) for b in per_table.values()))
    return {"bytes": total, "tables": dict(per_table), "days": days_read}


def runs_of(query: Mapping[str, Any], shards: int, shard_0: set[str]) -> int:
    """How many runs an hour (or a day, for train) make `query` at `shards` predict shards:
    a predict query of shard 0 once; of the captured other shard once per other shard, and
    once more for shard 0 when shard 0 did not run it (`shard_0`: its SQL texts; module doc,
    step 1); one that names no shard (a capture made before shards were replayed) once per
    shard."""
    if query["function"] != "predict":
        return 1
    shard = query.get("shard")
    if shard is None:
        return shards
    if shard == 0:
        return 1
    return shards - 1 + (query["sql"] not in shard_0)


def label(sql: str) -> str:
    text = " ".join(sql.split())
    return text[:90] + ("..." if len(text) > 90 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument(
        "--train-queries", nargs="*", default=[], metavar="N=FILE", help="scale_train --queries"
    )
    parser.add_argument("--price-per-tib", type=float, default=6.25)
    parser.add_argument(
        "--capture",
        type=Path,
        default=Path("bench-bytes-capture.json"),
        help="the replay's queries and table sizes: reused when the file exists",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-bytes-billed.json"))
    args = parser.parse_args()
    if not args.capture.exists():
        with tempfile.TemporaryDirectory(prefix="aircast-bytes-") as tmp:
            queries, tables = capture(Path(tmp) / "home")
        kept = {"queries": queries, "tables": {k: asdict(v) for k, v in tables.items()}}
        args.capture.write_text(json.dumps(kept, default=str))
    kept = json.loads(args.capture.read_text())
    queries = kept["queries"]
    tables = {k: TableSize(**v) for k, v in kept["tables"].items()}
    train_files = dict(item.split("=", 1) for item in args.train_queries)
    rows = []
    for n in args.sizes:
        mine = [q for q in queries if q["function"] != "train" or str(n) not in train_files]
        if str(n) in train_files:
            with open(train_files[str(n)]) as f:
                mine += [json.loads(line) for line in f]
        shards = max(1, math.ceil(n / PER_SHARD))
        shard_0 = {q["sql"] for q in mine if q["function"] == "predict" and q.get("shard") == 0}
        for q in mine:
            copies = runs_of(q, shards, shard_0)
            if not copies:
                continue
            as_of = dt.datetime.fromisoformat(q["as_of"])
            b = billed(q["sql"], load_params(q["params"]), as_of, n, tables)
            rows.append({"locations": n, "function": q["function"], "copies": copies, **b,
                         "query": label(q["sql"])})  # fmt: skip
    args.out.write_text(json.dumps(rows, indent=1, default=str))
    print("| locations | function | queries per run | GB billed per run | runs per month "
          "| TiB per month | $ per month |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        total = 0.0
        for fn in ("ingest", "predict", "monitor", "train"):
            mine = [r for r in rows if r["locations"] == n and r["function"] == fn]
            per_run = sum(r["bytes"] * r["copies"] for r in mine)
            month = per_run * RUNS_PER_MONTH[fn] / TIB
            total += month
            print(
                f"| {n:,} | {fn} | {sum(r['copies'] for r in mine)} | {per_run / 1e9:,.2f} "
                f"| {RUNS_PER_MONTH[fn]} | {month:,.2f} | {month * args.price_per_tib:,.0f} |"
            )
        print(f"| {n:,} | **all** | | | | **{total:,.2f}** "
              f"| **{total * args.price_per_tib:,.0f}** |")  # fmt: skip
    print()
    print("| locations | function | GB billed | tables (GB) | query |")
    print("|---:|---|---:|---|---|")
    for r in rows:
        if r["function"] == "train" and r["bytes"] <= MIN_BILLED * len(r["tables"]):
            continue  # hundreds of small train reads: summed above
        parts = ", ".join(f"{t} {b / 1e9:.2f}" for t, b in r["tables"].items())
        times = f" x{r['copies']}" if r["copies"] > 1 else ""
        print(f"| {r['locations']:,} | {r['function']}{times} | {r['bytes'] / 1e9:,.3f} "
              f"| {parts} | `{r['query']}` |")  # fmt: skip


if __name__ == "__main__":
    main()
