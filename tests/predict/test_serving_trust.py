"""Serving never degrades silently: a predict run in which locations (or all of them) had
to be skipped keeps their last forecasts while those still cover future hours, marked
stale with their issue time; an empty result is never published; a snapshot dated after
now (written by a clock gone wrong) cannot freeze serving."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from common.core.timeutil import iso
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot
from common.predict.job import PredictRequest, run_predict
from common.runtime.services import get_services
from common.serving.api import create_app
from tests.predict.test_predict import T, location_ids

HOUR = dt.timedelta(hours=1)


def _snapshot() -> Snapshot:
    return Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))


def _ingest_gap_after(t: dt.datetime, location_id: str | None = None) -> None:
    """No observation after `t` (of `location_id` alone, when given): as after an ingest
    outage, or one silent sensor."""
    svc = get_services()
    where, params = "ts > ?", [t]
    if location_id is not None:
        where, params = "location_id = ? AND ts > ?", [location_id, t]
    with svc.warehouse.connect() as con:  # type: ignore[attr-defined]
        con.execute(f"DELETE FROM {svc.settings.dataset}.observations_raw WHERE {where}", params)


def test_a_run_skipping_every_location_keeps_the_last_forecasts_stale(home: Path):
    first = run_predict(PredictRequest(as_of=T), get_services())
    ids = location_ids()
    assert first["counts"]["locations"] == len(ids)
    _ingest_gap_after(T)

    later = run_predict(PredictRequest(as_of=T + 7 * HOUR), get_services())
    assert later["status"] == "partial" and later["counts"]["locations"] == 0
    assert _part(later)["written"] is True and _part(later)["stale"] == len(ids)
    snap = _snapshot()
    assert snap.issued_at == T + 7 * HOUR
    assert sorted(snap.forecasts) == ids  # every location still served...
    assert {s.location_id for s in snap.stale} == set(ids)  # ...and said to be stale
    assert all(s.issued_at == T for s in snap.stale)
    assert all(snap.forecasts[i].issued_at == T for i in ids)

    # The api still answers every lookup, says the forecast is stale and when it was issued,
    # and /health says how many locations are served so.
    client = create_app(get_services().settings, get_services().store).test_client()
    r = client.get(f"/v1/forecasts/{ids[0]}")
    assert r.status_code == 200, r.json
    assert r.json["stale"] is True and r.json["issued_at"].startswith(iso(T)[:16])
    health = client.get("/health").json
    assert health["status"] == "degraded" and health["stale_locations"] == len(ids)
    assert "stale" in health["reason"]


def test_an_empty_result_is_never_published(home: Path):
    run_predict(PredictRequest(as_of=T), get_services())
    _ingest_gap_after(T)
    # 30 h later the T forecasts (24 h) cover no future hour: nothing left to serve.
    gone = run_predict(PredictRequest(as_of=T + 30 * HOUR), get_services())
    assert gone["counts"]["locations"] == 0
    assert _part(gone)["written"] is False
    assert "served snapshot is kept" in _part(gone)["reason"]
    assert _snapshot().issued_at == T  # what was served stays served


def test_a_partial_run_keeps_the_skipped_location_and_forecasts_the_rest(home: Path):
    run_predict(PredictRequest(as_of=T), get_services())
    gone = location_ids()[0]
    _ingest_gap_after(T, gone)
    answer = run_predict(PredictRequest(as_of=T + 8 * HOUR), get_services())
    assert [s["location_id"] for s in answer["skipped"]] == [gone]
    snap = _snapshot()
    assert sorted(snap.forecasts) == location_ids()
    assert [(s.location_id, s.issued_at) for s in snap.stale] == [(gone, T)]
    fresh = [i for i in location_ids() if i != gone]
    assert all(snap.forecasts[i].issued_at == T + 8 * HOUR for i in fresh)


def test_a_snapshot_dated_after_now_cannot_freeze_serving(home: Path):
    """Written by a clock gone wrong (or before as_of was checked against the clock): the
    next run replaces it instead of deferring to it for ever."""
    run_predict(PredictRequest(as_of=T), get_services())
    store = get_services().store
    future = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    future += dt.timedelta(days=6)
    data = store.get(SNAPSHOT_KEY).replace(iso(T).encode(), iso(future).encode())
    store.put(SNAPSHOT_KEY, data, "application/json")
    assert _snapshot().issued_at == future

    answer = run_predict(PredictRequest(as_of=T + HOUR), get_services())
    assert _part(answer)["written"] is True, _part(answer)
    assert iso(future) in _part(answer)["replaced"]
    assert _snapshot().issued_at == T + HOUR


def test_the_api_health_alerts_on_a_snapshot_dated_after_now(home: Path):
    run_predict(PredictRequest(as_of=T), get_services())
    store = get_services().store
    future = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    future += dt.timedelta(days=6)
    store.put(
        SNAPSHOT_KEY,
        store.get(SNAPSHOT_KEY).replace(iso(T).encode(), iso(future).encode()),
        "application/json",
    )
    health = create_app(get_services().settings, store).test_client().get("/health").json
    assert health["status"] == "degraded", health
    assert "dated after now" in health["reason"]


def _part(answer: dict) -> dict:
    """What publishing did to the one snapshot part (one target, unsharded)."""
    return answer["targets"]["pm2_5"]["snapshot"]["0"]


def test_the_counts_written_in_a_parts_head_are_what_the_monitor_reports(home: Path):
    """Predict writes a part's stale and missing counts before its maps; the monitor's
    snapshot condition reads them from the part's first kilobytes (a part published before
    counts were written is parsed whole, and says the same)."""
    from common.forecasting.snapshot import HEAD_BYTES, counts_of
    from common.monitoring import conditions

    run_predict(PredictRequest(as_of=T), get_services())
    gone = location_ids()[0]
    _ingest_gap_after(T, gone)
    svc = get_services()
    store = svc.store
    # T + 8 h: gone is served its T forecast (stale); T + 30 h: that one covers no future
    # hour any more, so gone is served nothing (missing).
    for hours, stale, missing in ((8, 1, 0), (30, 0, 1)):
        as_of = T + hours * HOUR
        run_predict(PredictRequest(as_of=as_of), svc)
        data = store.get(SNAPSHOT_KEY)
        snap = Snapshot.model_validate_json(data)
        served = set(snap.forecasts)
        parsed = (len(snap.stale), sum(s.location_id not in served for s in snap.skipped))
        assert parsed == (stale, missing)
        counts = counts_of(data[:HEAD_BYTES])
        assert counts is not None and (counts.stale, counts.missing) == parsed
        assert snap.counts == counts
        condition = conditions.snapshot(svc, as_of)
        assert (condition.stale, condition.missing) == parsed
        assert condition.issued_at == as_of and condition.state == "warn"

        # What is past the head is not read: a part cut short there reports the same.
        store.put(SNAPSHOT_KEY, data[:HEAD_BYTES])
        assert conditions.snapshot(svc, as_of) == condition
        # A part published before the counts were written is parsed whole: the same.
        head, rest = data.split(b'"locations":', 1)
        old = head.replace(b'"counts":' + counts.model_dump_json().encode() + b",", b"")
        assert b'"counts"' not in old
        store.put(SNAPSHOT_KEY, old + b'"locations":' + rest)
        assert conditions.snapshot(svc, as_of) == condition
        store.put(SNAPSHOT_KEY, data)
