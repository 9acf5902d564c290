"""bqemulator as tests/bqemulator_main.py starts it answers REST queries and Storage Write
appends side by side, as BigQuery does and as the sharded system needs (ten predict shards
query and append at once). Unpatched, the emulator deadlocked on the first overlap: its event
loop in a query's DuckDB call, a gRPC thread in an append's, each waiting for what the other
held (the launcher's docstring). A stall shows as no call answered for STALL_S seconds.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import pandas as pd
import pytest

from common.core.config import load_settings
from common.warehouse.bigquery_warehouse import BigQueryWarehouse
from tests.emulators import bigquery_emulator

pytestmark = pytest.mark.emulator

PROJECT = "aircast-concurrency"
WRITERS, APPENDS = 3, 10  # threads appending through the Storage Write API, appends each
READERS, QUERIES = 2, 15  # threads querying over REST, queries each
STALL_S = 120  # a call answers in well under a second; none answered in this long: stuck


def _row(writer: int, i: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "location_id": [f"w{writer}-{i}"],
            "name": ["x"],
            "latitude": [1.0],
            "longitude": [2.0],
            "source": ["synthetic"],
            "timezone": ["UTC"],
            "active": [True],
            "updated_at": [pd.Timestamp.now(tz="UTC")],
        }
    )


def test_rest_queries_beside_storage_write_appends_all_answer(tmp_path: Path) -> None:
    # An emulator of its own: a stalled one is killed on the way out, not left to the session.
    with bigquery_emulator(PROJECT, tmp_path) as bq:
        settings = load_settings(
            backend="gcp",
            home=tmp_path / "home",
            project=PROJECT,
            bucket="aircast-concurrency",
            dataset="concurrency",
            bigquery_endpoint=bq.rest,
            bigquery_storage_endpoint=bq.grpc,
            storage_endpoint="http://127.0.0.1:9",  # unused: no Cloud Storage here
        )
        BigQueryWarehouse(settings).ensure_schema()
        answered = [0]
        lock = threading.Lock()

        def tick() -> None:
            with lock:
                answered[0] += 1

        def write(writer: int) -> None:
            wh = BigQueryWarehouse(settings)  # its own clients, as a shard's instance has
            for i in range(APPENDS):
                wh.append("locations", _row(writer, i))
                tick()

        def read() -> None:
            wh = BigQueryWarehouse(settings)
            for _ in range(QUERIES):
                wh.query("SELECT COUNT(*) AS n FROM locations")
                tick()

        pool = ThreadPoolExecutor(WRITERS + READERS)
        futures = [pool.submit(write, k) for k in range(WRITERS)]
        futures += [pool.submit(read) for _ in range(READERS)]
        try:
            pending, seen = set(futures), -1
            while pending:
                done, pending = wait(pending, timeout=STALL_S, return_when=FIRST_EXCEPTION)
                if any(f.exception() for f in done):
                    break
                if answered[0] == seen:
                    pytest.fail(
                        f"bqemulator stalled: {answered[0]} of "
                        f"{WRITERS * APPENDS + READERS * QUERIES} calls answered, none in "
                        f"{STALL_S} s"
                    )
                seen = answered[0]
            for f in futures:
                f.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # stuck calls end with the emulator

        rows = BigQueryWarehouse(settings).query("SELECT location_id FROM locations")
        assert sorted(rows["location_id"]) == sorted(
            f"w{k}-{i}" for k in range(WRITERS) for i in range(APPENDS)
        )
