"""One contract for every Warehouse adapter: DuckDB always, BigQuery on bqemulator."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from common.core.config import Settings
from common.core.schema import TABLES, Column
from common.core.views import VIEWS
from common.warehouse import Warehouse, WarehouseError, open_warehouse
from common.warehouse.base import conform
from common.warehouse.bigquery_clients import make_read_client, make_write_client, storage_channel
from common.warehouse.bigquery_warehouse import PAGE_ROWS, BigQueryWarehouse
from common.warehouse.bigquery_write import STREAM_ROWS, load_job_id, parquet_bytes
from common.warehouse.sql import SQLError

T0 = pd.Timestamp("2024-03-01T00:00:00Z")


@pytest.fixture
def wh(settings: Settings) -> Warehouse:
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return warehouse


def obs(location: str, hour: int, pm: float | None, run: str, ingested_hour: int) -> dict:
    return {
        "location_id": location,
        "ts": T0 + pd.Timedelta(hours=hour),
        "pm2_5": pm,
        "source": "test",
        "run_id": run,
        "ingested_at": T0 + pd.Timedelta(hours=ingested_hour),
    }


def test_schema_has_every_table_and_view_and_is_idempotent(wh: Warehouse):
    first = wh.relations()
    assert set(TABLES) | set(VIEWS) <= set(first)
    for table in TABLES.values():
        assert [c for c, _ in first[table.name]] == list(table.column_names)
        assert [t for _, t in first[table.name]] == [c.type for c in table.columns]
    wh.ensure_schema()
    assert wh.relations() == first


def test_new_nullable_column_is_added_on_upgrade(wh: Warehouse, monkeypatch: pytest.MonkeyPatch):
    runs = TABLES["runs"]
    extra = Column("note", "STRING", "added in a later release")
    monkeypatch.setitem(TABLES, "runs", dataclasses.replace(runs, columns=(*runs.columns, extra)))
    wh.ensure_schema()
    assert ("note", "STRING") in wh.relations()["runs"]


def test_append_and_read_back_keeps_types_and_nulls(wh: Warehouse):
    rows = pd.DataFrame([obs("a", 0, 12.5, "r1", 1), obs("b", 1, None, "r1", 1)])
    rows["temperature_2m"] = [np.nan, -3.25]
    assert wh.append("observations_raw", rows) == 2
    out = wh.query("SELECT * FROM observations_raw ORDER BY location_id")
    assert list(out["location_id"]) == ["a", "b"]
    assert list(out["ts"]) == [T0, T0 + pd.Timedelta(hours=1)]
    assert str(out["ts"].dt.tz) == "UTC"
    assert out["pm2_5"].iloc[0] == 12.5 and pd.isna(out["pm2_5"].iloc[1])
    assert pd.isna(out["temperature_2m"].iloc[0]) and out["temperature_2m"].iloc[1] == -3.25


def test_views_keep_the_newest_row_per_key_and_retries_change_nothing(wh: Warehouse):
    batch = pd.DataFrame([obs("a", 0, 10.0, "r1", 1), obs("a", 1, 11.0, "r1", 1)])
    wh.append("observations_raw", batch)
    wh.append("observations_raw", batch)  # a retried run
    view = wh.query("SELECT location_id, ts, pm2_5 FROM observations ORDER BY ts")
    assert len(view) == 2 and list(view["pm2_5"]) == [10.0, 11.0]
    wh.append("observations_raw", pd.DataFrame([obs("a", 0, 99.0, "r2", 5)]))  # a correction
    view = wh.query("SELECT ts, pm2_5, run_id FROM observations ORDER BY ts")
    assert list(view["pm2_5"]) == [99.0, 11.0] and view["run_id"].iloc[0] == "r2"


def place(location: str, name: str, active: bool, updated_hour: int) -> dict:
    return {
        "location_id": location,
        "name": name,
        "latitude": 1.5,
        "longitude": 103.8,
        "source": "synthetic",
        "timezone": "UTC",
        "active": active,
        "updated_at": T0 + pd.Timedelta(hours=updated_hour),
    }


def test_current_locations_is_the_newest_row_per_location(wh: Warehouse):
    wh.append("locations", pd.DataFrame([place("a", "A", True, 1), place("b", "B", True, 1)]))
    # A rename of a, written before a retirement of a that was appended earlier: the view
    # goes by updated_at, not by the order rows arrived in.
    wh.append("locations", pd.DataFrame([place("a", "A retired", False, 3)]))
    wh.append("locations", pd.DataFrame([place("a", "A renamed", True, 2)]))
    view = wh.query("SELECT location_id, name, active FROM current_locations ORDER BY location_id")
    assert view.to_dict("records") == [
        {"location_id": "a", "name": "A retired", "active": False},
        {"location_id": "b", "name": "B", "active": True},
    ]
    assert int(wh.query("SELECT COUNT(*) AS n FROM locations")["n"].iloc[0]) == 4
    with pytest.raises(WarehouseError, match="is a view"):
        wh.append("current_locations", pd.DataFrame([place("c", "C", True, 1)]))


def test_parameters_are_values_never_sql(wh: Warehouse):
    wh.append(
        "observations_raw", pd.DataFrame([obs("a", 0, 1.0, "r", 1), obs("b", 2, 2.0, "r", 3)])
    )
    out = wh.query(
        "SELECT location_id FROM observations WHERE ts <= @as_of AND location_id IN UNNEST(@ids) "
        "AND pm2_5 >= @low AND source = @source ORDER BY location_id",
        {
            "as_of": T0 + pd.Timedelta(hours=1),
            "ids": ["a", "b"],
            "low": np.float64(0.5),
            "source": "test",
        },
    )
    assert list(out["location_id"]) == ["a"]
    hostile = wh.query(
        "SELECT COUNT(*) AS n FROM observations WHERE location_id = @id",
        {"id": "a' OR '1'='1"},
    )
    assert int(hostile["n"].iloc[0]) == 0
    assert int(wh.query("SELECT COUNT(*) AS n FROM observations_raw")["n"].iloc[0]) == 2


def test_bad_names_and_rows_are_refused_with_a_clear_error(wh: Warehouse, settings: Settings):
    good = pd.DataFrame([obs("a", 0, 1.0, "r", 1)])
    with pytest.raises(SQLError, match="invalid table name"):
        wh.append("observations_raw; DROP TABLE runs", good)
    with pytest.raises(WarehouseError, match="is a view"):
        wh.append("observations", good)
    with pytest.raises(WarehouseError, match="unknown columns"):
        wh.append("observations_raw", good.assign(pm25=1.0))
    with pytest.raises(WarehouseError, match="required"):
        wh.append("observations_raw", good.assign(location_id=None))
    with pytest.raises(SQLError, match="naive"):
        wh.query("SELECT 1 AS x FROM runs WHERE started_at > @t", {"t": pd.Timestamp("2024-01-01")})
    with pytest.raises(SQLError, match="cannot parse"):
        wh.query("SELECT FROM WHERE (")
    if settings.backend == "local":
        # bqemulator answers a query on a missing table with an empty result instead of
        # BigQuery's 404, so this check runs on DuckDB only.
        with pytest.raises(WarehouseError, match="no_such_table"):
            wh.query("SELECT nope FROM no_such_table")
    assert int(wh.query("SELECT COUNT(*) AS n FROM observations_raw")["n"].iloc[0]) == 0


def test_large_appends_all_land(wh: Warehouse):
    n = 1234
    frame = pd.DataFrame([obs(f"loc{i % 7}", i // 7, float(i), "r", 0) for i in range(n)])
    assert wh.append("observations_raw", frame) == n
    assert int(wh.query("SELECT COUNT(*) AS n FROM observations")["n"].iloc[0]) == n


class CountingSession(requests.Session):
    """The BigQuery client's HTTP session, counting the API requests it sends (and, through
    `CountingInterceptor`, the Storage API's gRPC calls as `GRPC <method>`)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.bodies: list[str] = []

    def request(self, method, url, *args, **kwargs):
        self.calls.append(f"{method} {url.split('?')[0]}")
        body = kwargs.get("data")
        if isinstance(body, bytes | str):
            self.bodies.append(body.decode(errors="replace") if isinstance(body, bytes) else body)
        return super().request(method, url, *args, **kwargs)


class CountingInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds each gRPC call on a channel to a CountingSession's list of calls."""

    def __init__(self, session: CountingSession) -> None:
        self.session = session

    def _count(self, continuation: Any, details: Any, request: Any) -> Any:
        self.session.calls.append(f"GRPC {details.method}")
        return continuation(details, request)

    intercept_unary_unary = _count
    intercept_unary_stream = _count
    intercept_stream_stream = _count


def counting_warehouse(settings: Settings) -> tuple[BigQueryWarehouse, CountingSession]:
    """A BigQueryWarehouse on the emulator whose clients (as make_client, make_read_client
    and make_write_client build them) send through a counting HTTP session and gRPC channel."""
    session = CountingSession()
    client = bigquery.Client(
        project=settings.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=settings.bigquery_endpoint),
        _http=session,
    )
    endpoint = settings.bigquery_storage_endpoint
    assert endpoint, "the emulator's gRPC port (bigquery_storage_endpoint)"
    channel = grpc.intercept_channel(storage_channel(endpoint), CountingInterceptor(session))
    wh = BigQueryWarehouse(
        settings,
        client=client,
        read_client=make_read_client(settings, channel),
        write_client=make_write_client(settings, channel),
    )
    wh.ensure_schema()
    return wh, session


def read_paths(calls: list[str]) -> dict[str, int]:
    """A read's requests by path: the query, REST result pages, Storage Read API calls."""
    return {
        "queries": sum(c.startswith("POST") and c.endswith("/queries") for c in calls),
        "rest pages": sum(
            c.startswith("GET") and ("/queries/" in c or "/data" in c) for c in calls
        ),
        "read sessions": sum(c.endswith("BigQueryRead/CreateReadSession") for c in calls),
        "read streams": sum(c.endswith("BigQueryRead/ReadRows") for c in calls),
    }


@pytest.mark.emulator
def test_bigquery_large_reads_come_through_the_storage_read_api(gcp_settings: Settings) -> None:
    """A result larger than the query's first page is read as Arrow over the Storage Read
    API (the emulator's gRPC port), not paged through REST; a small one from the query's
    own response with no further request. Both give the same rows and types."""
    wh, session = counting_warehouse(gcp_settings)
    n = PAGE_ROWS * 2 + 500
    frame = pd.DataFrame(
        {
            "location_id": [f"l{i % 97}" for i in range(n)],
            "ts": [T0 + pd.Timedelta(hours=i // 97) for i in range(n)],
            "pm2_5": [None if i % 11 == 0 else i / 4 for i in range(n)],
            "source": "test",
            "run_id": "r" * 250,
            "ingested_at": T0,
        }
    )  # fmt: skip  (wide rows: a ReadRows message over gRPC's default 4 MB limit)
    wh.append("observations_raw", frame)
    sql = "SELECT location_id, ts, pm2_5, run_id FROM observations_raw ORDER BY ts, location_id"

    session.calls.clear()
    large = wh.query(sql)
    assert read_paths(session.calls) == {
        "queries": 1, "rest pages": 0, "read sessions": 1, "read streams": 1
    }, session.calls  # fmt: skip
    assert len(large) == n
    want = frame.sort_values(["ts", "location_id"]).reset_index(drop=True)
    assert large["location_id"].tolist() == want["location_id"].tolist()
    assert large["ts"].tolist() == want["ts"].tolist()
    assert large["pm2_5"].isna().sum() == want["pm2_5"].isna().sum()
    assert large["pm2_5"].sum() == pytest.approx(want["pm2_5"].sum())

    session.calls.clear()
    small = wh.query(sql + " LIMIT @n", {"n": 100})
    assert read_paths(session.calls) == {
        "queries": 1, "rest pages": 0, "read sessions": 0, "read streams": 0
    }, session.calls  # fmt: skip
    assert small.dtypes.to_dict() == large.dtypes.to_dict()
    pd.testing.assert_frame_equal(small, large.head(100))


def append_paths(calls: list[str]) -> dict[str, int]:
    """An append's requests by path: load jobs (and their uploads), Storage Write API calls."""
    return {
        "load jobs": sum("/upload/" in c and c.startswith("POST") for c in calls),
        "uploads": sum(c.startswith("PUT") for c in calls),
        "insertAll": sum("insertAll" in c for c in calls),
        "write streams": sum(c.endswith("BigQueryWrite/CreateWriteStream") for c in calls),
        "appends": sum(c.endswith("BigQueryWrite/AppendRows") for c in calls),
        "finalized": sum(c.endswith("BigQueryWrite/FinalizeWriteStream") for c in calls),
    }


@pytest.mark.emulator
def test_bigquery_bulk_append_is_one_load_job_whatever_the_size(gcp_settings: Settings) -> None:
    wh, session = counting_warehouse(gcp_settings)
    counts = []
    for n in (STREAM_ROWS + 1, 20_000):
        session.calls.clear()
        frame = pd.DataFrame(
            [obs(f"l{n}-{i % 50}", i // 50, float(i), f"r{n}", 0) for i in range(n)]
        )
        assert wh.append("observations_raw", frame) == n
        counts.append(len(session.calls))
        assert append_paths(session.calls) == {
            "load jobs": 1, "uploads": 1, "insertAll": 0, "write streams": 0, "appends": 0,
            "finalized": 0,
        }, session.calls  # fmt: skip
    assert counts[0] == counts[1] <= 6, session.calls  # upload session, upload, job status


@pytest.mark.emulator
def test_bigquery_small_append_goes_through_the_storage_write_api(gcp_settings: Settings) -> None:
    """A few rows (a run's audit row) take no load job, so they count against no per-table
    job quota: one committed write stream, one AppendRows, finalized. Types and NULLs land
    as a load job would land them."""
    wh, session = counting_warehouse(gcp_settings)
    rows = pd.DataFrame([obs("a", 0, 12.5, "r1", 1), obs("b", 1, None, "r1", 1)])
    rows["temperature_2m"] = [np.nan, -3.25]
    session.calls.clear()
    assert wh.append("observations_raw", rows) == 2
    assert append_paths(session.calls) == {
        "load jobs": 0, "uploads": 0, "insertAll": 0, "write streams": 1, "appends": 1,
        "finalized": 1,
    }, session.calls  # fmt: skip
    out = wh.query("SELECT * FROM observations_raw ORDER BY location_id")
    assert list(out["ts"]) == [T0, T0 + pd.Timedelta(hours=1)]
    assert out["pm2_5"].iloc[0] == 12.5 and pd.isna(out["pm2_5"].iloc[1])
    assert pd.isna(out["temperature_2m"].iloc[0]) and out["temperature_2m"].iloc[1] == -3.25
    assert list(out["ingested_at"]) == [T0 + pd.Timedelta(hours=1)] * 2


class LoseFirstAnswer(grpc.StreamStreamClientInterceptor):
    """The first AppendRows reaches the server and is applied, but its answer is lost: the
    caller sees UNAVAILABLE, as after a dropped connection."""

    def __init__(self) -> None:
        self.lost = 0

    def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        answers = continuation(details, request_iterator)
        if not details.method.endswith("/AppendRows") or self.lost:
            return answers
        self.lost += 1
        list(answers)  # the server applied the append and answered

        def lost() -> Iterator[Any]:
            raise Unavailable()
            yield  # a generator: the caller sees the error when it reads the answer

        return lost()


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection reset after the append was sent"

    def trailing_metadata(self) -> tuple:
        return ()


@pytest.mark.emulator
def test_bigquery_small_append_retried_after_a_lost_answer_lands_once(
    gcp_settings: Settings,
) -> None:
    """A retried AppendRows on the same stream at offset 0 is answered ALREADY_EXISTS, so an
    append whose first answer was lost writes its rows exactly once."""
    session = CountingSession()
    lose = LoseFirstAnswer()
    channel = grpc.intercept_channel(
        storage_channel(str(gcp_settings.bigquery_storage_endpoint)),
        CountingInterceptor(session),
        lose,
    )
    wh = BigQueryWarehouse(gcp_settings, write_client=make_write_client(gcp_settings, channel))
    wh.ensure_schema()
    assert wh.append("observations_raw", pd.DataFrame([obs("once", 0, 1.0, "r", 0)])) == 1
    assert lose.lost == 1
    assert append_paths(session.calls)["appends"] == 2, session.calls
    got = wh.query("SELECT COUNT(*) AS n FROM observations_raw WHERE location_id = 'once'")
    assert int(got["n"].iloc[0]) == 1


@pytest.mark.emulator
def test_bigquery_append_names_its_load_job_by_content(gcp_settings: Settings) -> None:
    """BigQuery refuses a second job with the same id (409), so a retried append of the same
    rows cannot load them twice. bqemulator assigns its own job ids and cannot show the 409:
    this checks the id aircast sends, and that it is the content's."""
    wh, session = counting_warehouse(gcp_settings)
    spec = TABLES["observations_raw"]
    rows = [obs("retry", i, float(i), "r-retry", 0) for i in range(STREAM_ROWS + 30)]
    frame = conform(spec, pd.DataFrame(rows))
    session.bodies.clear()
    assert wh._append(spec, frame) == len(rows)
    job_id = load_job_id(spec.name, parquet_bytes(spec, frame))
    assert any(job_id in body for body in session.bodies)
    same = conform(spec, pd.DataFrame(rows))
    other = conform(spec, pd.DataFrame(rows).assign(pm2_5=1.0))
    assert load_job_id(spec.name, parquet_bytes(spec, same)) == job_id
    assert load_job_id(spec.name, parquet_bytes(spec, other)) != job_id


def test_forecast_aqi_view_matches_the_python_tables(wh: Warehouse):
    """The view's SQL is rendered from common.core.aqi's tables: on each backend it must give
    the same index and category as the Python code, on breakpoints and between them. Each
    location observed the forecast's value for the 11 hours before, so the NowCast of the
    median's 12 hours is that value."""
    from common.core.aqi import CN_HJ633, US_EPA
    from common.core.aqi_index import hourly_index, index_of

    values = [0.0, 9.0, 9.05, 17.4, 35.5, 80.0, 125.4, 240.0, 900.0]
    rows = [
        {
            "run_id": "r1",
            "model_version": "v1",
            "location_id": f"loc{i}",
            "target": "pm2_5",
            "issued_at": T0,
            "target_ts": T0 + pd.Timedelta(hours=1),
            "horizon_h": 1,
            "yhat": v,
            "yhat_lower": v / 2,
            "yhat_upper": v * 2,
            "created_at": T0,
        }
        for i, v in enumerate(values)
    ]
    wh.append("forecasts", pd.DataFrame(rows))
    observed = [obs(f"loc{i}", -h, v, "r0", 0) for i, v in enumerate(values) for h in range(10)]
    wh.append("observations_raw", pd.DataFrame(observed))
    got = wh.query(
        "SELECT yhat, aqi_us_epa, category_us_epa, aqi_upper_us_epa, aqi_cn_hj633, "
        "category_cn_hj633 FROM forecast_aqi ORDER BY yhat"
    )
    assert got["yhat"].tolist() == values
    for row in got.itertuples():
        us, cn = (
            hourly_index(US_EPA, "pm2_5", [row.yhat] * 12, 11),
            index_of(CN_HJ633, "pm2_5", "24h", row.yhat),  # HJ 633: the hour's own value
        )
        assert us == index_of(US_EPA, "pm2_5", "24h", row.yhat)  # a constant NowCast
        assert (int(row.aqi_us_epa), row.category_us_epa) == (us, US_EPA.category(us).name)
        upper = hourly_index(US_EPA, "pm2_5", [row.yhat] * 11 + [row.yhat * 2], 11)
        assert int(row.aqi_upper_us_epa) == upper
        assert (int(row.aqi_cn_hj633), row.category_cn_hj633) == (cn, CN_HJ633.category(cn).name)


def test_latest_forecasts_per_target_and_forecast_aqi_averaging_as_the_api_does(wh: Warehouse):
    """Three targets forecast for the same location and hours are three rows per hour of
    latest_forecasts (its key holds the target), a later issue supersedes each target's
    hours it covers, and forecast_aqi gives each row its own pollutant's sub-index with the
    PM NowCast and the 8-hour O3 mean: each forecast hour's index over the hours observed
    up to its issue time and that issue's forecast after it, with missing hours, a re-run
    and O3 high enough for the 1-hour table, must equal what the api computes
    (common.serving.indices)."""
    import random

    from common.core.aqi import SCHEMES
    from common.forecasting.snapshot import LocationForecast, RecentObservations
    from common.serving.indices import point_indices
    from common.warehouse.view_keys import duplicates

    rng = random.Random(18)
    level = {"pm2_5": 60.0, "pm10": 140.0, "ozone": 220.0}
    first, second = T0 + pd.Timedelta(hours=12), T0 + pd.Timedelta(hours=14)
    hours = pd.date_range(T0, second, freq="h")
    seen = {
        t: [None if (t == "pm2_5" and k in (9, 13)) else round(level[t] * rng.uniform(0.4, 1.6), 1)
            for k in range(len(hours))]
        for t in level
    }  # fmt: skip
    wh.append(
        "observations_raw",
        pd.DataFrame(
            {"location_id": "x", "ts": hours, **seen, "source": "test", "run_id": "o",
             "ingested_at": second}
        ),
    )  # fmt: skip

    def issue(at: pd.Timestamp, run: str, created: int) -> dict[str, list[float]]:
        bands = {}
        for t, base in level.items():
            yhat = [round(base * rng.uniform(0.3, 1.8), 2) for _ in range(6)]
            bands[t] = yhat
            rows = [
                {"run_id": run, "model_version": "v", "location_id": "x", "target": t,
                 "issued_at": at, "target_ts": at + pd.Timedelta(hours=h + 1),
                 "horizon_h": h + 1, "yhat": y, "yhat_lower": y * 0.7, "yhat_upper": y * 1.4,
                 "created_at": at + pd.Timedelta(minutes=created)}
                for h, y in enumerate(yhat)
            ]  # fmt: skip
            wh.append("forecasts", pd.DataFrame(rows))
        return bands

    issue(first, "r1", 1)
    forecasts = {first: issue(first, "r1-again", 2), second: issue(second, "r2", 1)}
    got = wh.query("SELECT * FROM forecast_aqi ORDER BY target, target_ts")
    assert len(got) == 3 * 8  # per target: hours 1-2 of the first issue, then 6 of the second
    latest = wh.query("SELECT target, issued_at, run_id FROM latest_forecasts")
    assert latest.groupby("target").size().to_dict() == {"ozone": 8, "pm10": 8, "pm2_5": 8}
    assert set(latest["run_id"]) == {"r1-again", "r2"}
    assert not any(duplicates(wh).values())
    for row in got.itertuples():
        at = row.issued_at
        yhat = forecasts[at][row.target]
        fc = LocationForecast(
            issued_at=at,
            model_version="v",
            yhat=yhat,
            yhat_lower=[y * 0.7 for y in yhat],
            yhat_upper=[y * 1.4 for y in yhat],
        )
        upto = [v for ts, v in zip(hours, seen[row.target], strict=True) if ts <= at]
        recent = RecentObservations(start=T0, values=upto)
        for scheme in SCHEMES.values():
            want = point_indices(scheme, row.target, fc, recent, 6)[row.horizon_h - 1]
            name = scheme.name.replace("-", "_")
            bands = [getattr(row, f"{b}_{name}") for b in ("aqi", "aqi_lower", "aqi_upper")]
            assert [None if pd.isna(v) else int(v) for v in bands] == list(want), (
                scheme.name,
                row.target,
                row.target_ts,
            )
            category = scheme.category(want[0])
            assert getattr(row, f"category_{name}") == (category and category.name)
    assert got[["aqi_us_epa", "aqi_lower_us_epa", "aqi_upper_us_epa"]].notna().all().all()
    ozone = got[got["target"] == "ozone"]
    assert (ozone["yhat"] * 24.45 / 48 / 1000 >= 0.125).any()  # the 1-hour table was in play


def test_in_unnest_matches_exactly_the_listed_ids_through_the_view(wh: Warehouse):
    """`IN UNNEST(@ids)` (DuckDB writes the list into the statement, see
    duckdb_warehouse._inline_id_lists): the listed ids only, quotes included, nothing more
    for a value shaped like an injection, and the view's dedup still applies."""
    ids = ["a", "o'x", "b", "c"]
    rows = [obs(i, h, float(h), "r1", 0) for i in ids for h in range(3)]
    rows += [obs("o'x", 0, 99.0, "r2", 1)]  # a newer version of one row
    wh.append("observations_raw", pd.DataFrame(rows))
    asked = ["o'x", "b", "x') OR TRUE OR ('"]
    got = wh.query(
        "SELECT location_id, ts, pm2_5 FROM observations WHERE location_id IN UNNEST(@ids) "
        "ORDER BY location_id, ts",
        {"ids": asked},
    )
    assert got["location_id"].tolist() == ["b"] * 3 + ["o'x"] * 3
    assert got["pm2_5"].tolist() == [0.0, 1.0, 2.0, 99.0, 1.0, 2.0]


def test_duckdb_makes_its_schema_once_and_again_when_it_changes(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """A new process opening an unchanged warehouse skips the views' translation (about a
    second per run); a changed definition is applied on first use, without ensure_schema."""
    translated: list[str] = []
    real = Warehouse.render

    def counting(self: Warehouse, sql: str) -> str:
        translated.append(sql)
        return real(self, sql)

    monkeypatch.setattr(Warehouse, "render", counting)
    open_warehouse(local_settings).ensure_schema()
    assert len(translated) == len(VIEWS)  # each view made once, not again by the forced pass
    translated.clear()
    assert open_warehouse(local_settings).query("SELECT COUNT(*) AS n FROM runs")["n"][0] == 0
    assert translated == ["SELECT COUNT(*) AS n FROM runs"]  # no view was made again

    runs = TABLES["runs"]
    extra = Column("note", "STRING", "added in a later release")
    monkeypatch.setitem(TABLES, "runs", dataclasses.replace(runs, columns=(*runs.columns, extra)))
    later = open_warehouse(local_settings)
    later.query("SELECT 1 AS one")
    assert ("note", "STRING") in later.relations()["runs"]
    assert len(translated) > len(VIEWS)  # every view made again with the new table


def test_duckdb_works_within_the_configured_memory_limit(tmp_path):
    """Each operation's connection takes AIRCAST_DUCKDB_MEMORY_LIMIT (DuckDB's own default is
    80% of the machine's memory, which a predict shard's read used as cache)."""
    from common.core.config import load_settings

    settings = load_settings(backend="local", home=tmp_path / "home", duckdb_memory_limit="256MB")
    wh = open_warehouse(settings)
    limit = wh.query("SELECT current_setting('memory_limit') AS m")["m"][0]
    assert limit in {"256.0 MB", "244.1 MiB"}, limit


def test_duckdb_session_is_one_connection_that_other_processes_wait_for(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """Inside a session every operation shares one open file (each open and close costs
    ~20 ms); another process's operation waits for the session, then sees its rows."""
    import duckdb

    from common.warehouse.duckdb_warehouse import DuckDBWarehouse

    wh = open_warehouse(local_settings)
    wh.ensure_schema()
    opened: list[str] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda path: opened.append(path) or real(path))
    other = DuckDBWarehouse(local_settings, lock_timeout=0.2)  # its own lock: another process
    with wh.session():
        wh.append("observations_raw", pd.DataFrame([obs("a", 0, 10.0, "r1", 0)]))
        assert len(wh.query("SELECT * FROM observations_raw")) == 1
        with wh.session():  # nested: the same connection
            assert len(wh.query("SELECT * FROM observations")) == 1
        with pytest.raises(WarehouseError, match="busy"):
            other.query("SELECT 1 AS one")
    assert len(opened) == 1
    assert len(other.query("SELECT * FROM observations_raw")) == 1
    assert len(opened) == 2  # outside a session: one open per operation again
