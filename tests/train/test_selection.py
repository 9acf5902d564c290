"""The training selection read from the warehouse: on small data the same rows and the
same booster as the in-memory path; on data too large for one grid, a sampled selection
built on small grids whose rows are the whole grid's rows, within the budget, and that
never reads past its cut."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.core.config import Settings, load_settings
from common.forecasting import sampling
from common.forecasting.examples import training_examples
from common.forecasting.features import HISTORY_HOURS, FeatureSpec
from common.forecasting.neighbours import neighbour_matrix
from common.forecasting.sampling import sampled_examples
from common.forecasting.training import IssueWindow, TrainingData, fit_model
from common.ingest.job import IngestRequest, run_ingest
from common.runtime import locations
from common.runtime.services import Services
from common.storage import open_store
from common.train.observations import (
    WarehouseObservations,
    observations,
    read_observations,
    reference_rows,
    summarise,
)
from common.warehouse import open_warehouse

AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
START = AS_OF - dt.timedelta(days=30)
SPEC = FeatureSpec()
FIRST = START + dt.timedelta(hours=HISTORY_HOURS)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Services:
    """30 days of synthetic observations in a DuckDB home, built once for the module."""
    home = tmp_path_factory.mktemp("selection") / "home"
    settings = load_settings(backend="local", home=home)
    services = Services(settings, open_warehouse(settings), open_store(settings))
    run_ingest(IngestRequest(start=START, end=AS_OF, source="synthetic"), services)
    return services


@pytest.fixture(scope="module")
def frame(svc: Services) -> pd.DataFrame:
    return read_observations(svc.warehouse, SPEC, START, AS_OF)


@pytest.fixture(scope="module")
def places(svc: Services) -> pd.DataFrame:
    return locations.current(svc.warehouse)


def source(svc: Services, end: dt.datetime = AS_OF) -> WarehouseObservations:
    summary = summarise(svc.warehouse, SPEC, START, AS_OF)
    return WarehouseObservations(svc.warehouse, SPEC, START, end, summary)


class Spy:
    """A source that records every read (to check what the selection asked for)."""

    def __init__(self, inner: WarehouseObservations) -> None:
        self.inner, self.start, self.end = inner, inner.start, inner.end
        self.spec = inner.spec
        self.reads: list[tuple[dt.datetime, dt.datetime, int, pd.Timestamp | None]] = []

    def location_ids(self) -> list[str]:
        return self.inner.location_ids()

    def target_count(self, start: dt.datetime, end: dt.datetime) -> int:
        return self.inner.target_count(start, end)

    def read(
        self, start: dt.datetime, end: dt.datetime, ids: list[str], columns: list[str]
    ) -> pd.DataFrame:
        got = self.inner.read(start, end, ids, columns)
        newest = pd.to_datetime(got["ts"], utc=True).max() if len(got) else None
        self.reads.append((start, end, len(ids), newest))
        return got

    def until(self, end: dt.datetime) -> Spy:
        return Spy(self.inner.until(end))


def canonical(X: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Rows keyed by (location, issue time, horizon), every feature and key value."""
    out = pd.concat([keys.astype({"location_id": str}), X.add_prefix("x_")], axis=1)
    return out.set_index(["location_id", "issued_at", "horizon_h"]).sort_index()


def test_small_data_is_read_whole_and_gives_todays_rows_and_booster(
    svc: Services, frame: pd.DataFrame, places: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
):
    summary = summarise(svc.warehouse, SPEC, START, AS_OF)
    obs = observations(svc.warehouse, SPEC, START, AS_OF, summary)
    assert isinstance(obs, pd.DataFrame)
    pd.testing.assert_frame_equal(obs, frame)  # the job's frame is today's read
    assert summary.observations == len(frame)
    assert summary.locations == frame["location_id"].nunique()

    # The sampled path on grids of at most 2,000 cells (many batches), with a budget that
    # covers everything, selects the same rows and fits the same booster.
    monkeypatch.setattr(sampling, "MAX_CELLS", 2000)
    end = AS_OF - dt.timedelta(days=8)
    window = IssueWindow(FIRST, end, 10**7)
    old = fit_model(TrainingData(frame, SPEC, places), window, {"nthread": 1})
    new = fit_model(TrainingData(source(svc), SPEC, places), window, {"nthread": 1})
    assert old.rows == new.rows and old.blocks == new.blocks
    X, _, _ = training_examples(frame, SPEC, end, AS_OF - dt.timedelta(hours=24), places, 10**7)
    np.testing.assert_array_equal(old.model.predict(X), new.model.predict(X))

    a = training_examples(frame, SPEC, FIRST, end, places, 10**7)
    b = sampled_examples(source(svc), SPEC, FIRST, end, places, 10**7, max_cells=2000)
    pd.testing.assert_frame_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    pd.testing.assert_frame_equal(
        a[2].astype({"location_id": str}), b[2].astype({"location_id": str})
    )


@pytest.mark.parametrize("max_cells", [600, 3000])
def test_a_sampled_selection_is_the_whole_grids_rows_within_the_budget(
    svc: Services, frame: pd.DataFrame, places: pd.DataFrame, max_cells: int
):
    end = AS_OF - dt.timedelta(days=2)
    whole = canonical(*_xk(training_examples(frame, SPEC, FIRST, end, places, 10**7)))
    X, y, keys = sampled_examples(source(svc), SPEC, FIRST, end, places, 3000, max_cells=max_cells)
    assert 0 < len(X) <= 3000 and len(y) == len(X)
    pairs = keys[["location_id", "issued_at"]].drop_duplicates()
    assert len(pairs) <= 3000 // SPEC.horizon
    assert pairs["location_id"].nunique() > 1  # drawn from several locations
    assert pairs["issued_at"].dt.floor("D").nunique() > 10  # and from across the window
    got = canonical(X, keys)
    # Every sampled row is the row the whole grid gives for that (location, t, h).
    pd.testing.assert_frame_equal(got, whole.loc[got.index], check_categorical=False)
    # Deterministic.
    again = sampled_examples(source(svc), SPEC, FIRST, end, places, 3000, max_cells=max_cells)
    pd.testing.assert_frame_equal(X, again[0])


def test_the_sampled_selection_reads_nothing_after_its_cut(svc: Services, places: pd.DataFrame):
    cut = AS_OF - dt.timedelta(days=5)
    block_end = cut - dt.timedelta(hours=SPEC.horizon)
    spy = Spy(source(svc)).until(cut)
    X, _, keys = sampled_examples(spy, SPEC, FIRST, block_end, places, 4000, max_cells=800)
    assert len(X) and len(spy.reads) > 2
    assert all(newest is None or newest <= pd.Timestamp(cut) for *_, newest in spy.reads)
    assert keys["target_ts"].max() <= pd.Timestamp(cut)
    assert keys["issued_at"].min() >= pd.Timestamp(FIRST)
    assert keys["issued_at"].max() <= pd.Timestamp(block_end)
    # Every read is bounded: at most the grid's cells, never the whole window.
    for start, end, n_ids, _ in spy.reads:
        assert n_ids * ((end - start) / dt.timedelta(hours=1)) <= 800 + n_ids


def test_the_fingerprint_follows_the_data(svc: Services, tmp_path: Path):
    first = summarise(svc.warehouse, SPEC, START, AS_OF)
    assert summarise(svc.warehouse, SPEC, START, AS_OF) == first  # deterministic
    shorter = summarise(svc.warehouse, SPEC, START, AS_OF - dt.timedelta(hours=1))
    assert shorter.fingerprint != first.fingerprint
    assert shorter.observations < first.observations


# What the summary in time slices folded in pandas (a996283 and before: one aggregate per
# location since) gave for the Beijing window below, in 24-hour slices and in one: data
# already trained on keeps its version ids.
BEIJING_FINGERPRINT = "95fb0fdfa2e34f3485345e57486fee8b49a1a0422ef266c8063e4a9f9dbb53c4"


def test_the_summary_of_real_data_is_the_sliced_summarys(
    settings: Settings, shared_data: Path, tmp_path: Path
):
    """A month of the eight Beijing stations (ingested from ../shared/data, then stored with
    one ingestion time so the fingerprint is fixed) summarised over a window inside it, on
    each backend: the sliced summary's fingerprint, and counts, extent and target values per
    day of exactly the rows in (start, end] (rows on both sides of it are in the table)."""
    folder = shared_data / "beijing-multisite"
    local = load_settings(backend="local", home=tmp_path / "csv")
    local = local.model_copy(update={"csv_path": folder})
    csv = Services(local, open_warehouse(local), open_store(local))
    month = IngestRequest(
        start="2016-03-01T00:00Z", end="2016-03-31T23:00Z", source="csv", path=str(folder)
    )
    assert run_ingest(month, csv)["status"] == "success"
    rows = csv.warehouse.query("SELECT * FROM observations_raw")
    ingested = dt.datetime(2016, 4, 1, tzinfo=dt.UTC)
    wh = open_warehouse(settings)
    wh.ensure_schema()
    wh.append("observations_raw", rows.assign(run_id="r", ingested_at=ingested))
    start = dt.datetime(2016, 3, 3, 5, tzinfo=dt.UTC)
    end = dt.datetime(2016, 3, 29, 17, tzinfo=dt.UTC)
    summary = summarise(wh, SPEC, start, end)
    assert summary.fingerprint == BEIJING_FINGERPRINT
    inside = rows[(rows["ts"] > pd.Timestamp(start)) & (rows["ts"] <= pd.Timestamp(end))]
    assert summary.observations == len(inside) == 8 * (26 * 24 + 12)
    assert summary.location_ids == tuple(sorted(inside["location_id"].unique()))
    assert summary.oldest == inside["ts"].min().to_pydatetime()
    assert summary.newest == pd.Timestamp(end).to_pydatetime()
    per_day = inside.groupby(inside["ts"].dt.date)[SPEC.target].count()
    assert summary.target_by_day == tuple((d, int(n)) for d, n in per_day.items())
    assert len(per_day) == 27 and per_day.sum() < len(inside)  # the gaps are not counted


def test_the_network_matrix_is_built_once_per_network():
    """The sampled selections share one neighbour matrix while the places are the same, and
    it is the matrix they built each time before; a moved place builds it anew."""
    rng = np.random.default_rng(3)
    ids = [f"p{i:03d}" for i in range(60)]
    places = pd.DataFrame(
        {"location_id": ids, "latitude": 50 + rng.random(60), "longitude": 10 + rng.random(60)}
    )
    first = sampling.network_matrix(ids, places)
    assert sampling.network_matrix(ids, places.copy()) is first
    want = neighbour_matrix(ids, places).tocsr()
    assert (first != want).nnz == 0 and first.nnz == want.nnz > 0
    moved = places.copy()
    moved.loc[moved["location_id"] == ids[0], "latitude"] += 5.0
    again = sampling.network_matrix(ids, moved)
    assert again is not first and (again != neighbour_matrix(ids, moved).tocsr()).nnz == 0
    assert (again != first).nnz > 0
    with pytest.raises(ValueError):
        first.indices[0] = 1  # read-only: a caller cannot change what the next one reads


def _xk(result: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    return result[0], result[2]


def test_the_train_reads_give_the_same_answers_on_every_backend(
    settings: Settings, frame: pd.DataFrame
):
    """The summary, the counts and the reads are one SQL text for DuckDB and BigQuery."""
    from common.warehouse import open_warehouse as open_wh

    wh = open_wh(settings)
    wh.ensure_schema()
    rows = frame[frame["ts"] > pd.Timestamp(AS_OF - dt.timedelta(days=4))].copy()
    wh.append("observations_raw", rows.assign(source="test", run_id="r", ingested_at=AS_OF))
    start = AS_OF - dt.timedelta(days=3)
    summary = summarise(wh, SPEC, start, AS_OF)
    inside = rows[rows["ts"] > pd.Timestamp(start)]
    assert summary.observations == len(inside)
    assert summary.location_ids == tuple(sorted(inside["location_id"].unique()))
    assert summary.oldest == pd.Timestamp(start + dt.timedelta(hours=1)).to_pydatetime()
    assert summary.fingerprint == EXPECTED_FINGERPRINTS.setdefault("3 days", summary.fingerprint)
    src = WarehouseObservations(wh, SPEC, start, AS_OF, summary)
    a, b = AS_OF - dt.timedelta(hours=48), AS_OF - dt.timedelta(hours=1)  # two whole days
    want = inside[(inside["ts"] >= pd.Timestamp(a)) & (inside["ts"] <= pd.Timestamp(b))]
    assert src.target_count(a, b) == want[SPEC.target].notna().sum()
    ids = list(summary.location_ids[:2])
    got = src.until(b).read(a, AS_OF, ids, [SPEC.target, "pm10"])
    want = want[want["location_id"].isin(ids) & (want["ts"] > pd.Timestamp(a))]
    assert len(got) == len(want) and list(got.columns) == ["location_id", "ts", "pm2_5", "pm10"]
    assert got["ts"].max() <= pd.Timestamp(b) and got["pm10"].sum() == pytest.approx(
        want["pm10"].sum()
    )
    ref = reference_rows(src, max_cells=150)  # the window's 3 days (one range) x 2 locations
    assert ref["location_id"].nunique() == 2 and ref["ts"].dt.floor("D").nunique() <= 4
    assert len(ref) <= 2 * 3 * 24 and ref["ts"].min() > pd.Timestamp(start)


EXPECTED_FINGERPRINTS: dict[str, str] = {}  # the first backend's, which the others must match
