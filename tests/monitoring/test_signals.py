"""Each health signal's SQL on every backend (DuckDB, and BigQuery on bqemulator), once,
on a tiny dataset whose answers are worked out by hand: the same query must give the
same numbers on both, which catches a dialect the adapters do not translate."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import cast

import pandas as pd
import pytest

from common.core.config import Settings
from common.core.views import accuracy_sql, persistence_sql
from common.monitoring import accuracy_condition, signals
from common.monitoring import thresholds as th
from common.predict.reads import recent_accuracy
from common.runtime.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse
from tests.monitoring.place_weights_rows import place_weights_row

T = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _run(run_id: str, function: str, as_of: dt.datetime, status: str) -> dict:
    return {
        "run_id": run_id,
        "function": function,
        "as_of": as_of,
        "status": status,
        "started_at": as_of,
        "finished_at": None if status == "running" else as_of + 0.1 * H,
        "deadline_at": as_of + H,
    }


def _load(settings: Settings):
    wh = open_warehouse(settings)
    wh.ensure_schema()
    wh.append(
        "locations",
        pd.DataFrame(
            {
                "location_id": ["a", "b"],
                "name": ["A", "B"],
                "source": "synthetic",
                "active": True,
                "updated_at": T - 100 * H,
            }
        ),
    )
    # a: observed up to T (pm2_5 = 20 - k at T - k h); b: silent since T - 20 h
    a = [("a", T - k * H, 20.0 - k, "ing-1") for k in range(6)]
    b = [("b", T - k * H, 5.0, "ing-old") for k in range(20, 31)]
    obs = pd.DataFrame(a + b, columns=["location_id", "ts", "pm2_5", "run_id"])
    wh.append(
        "observations_raw",
        obs.assign(source="synthetic", temperature_2m=1.5, ingested_at=T + H),
    )
    wh.append(
        "runs",
        pd.DataFrame(
            [
                _run("ing-1", "ingest", T, "running"),
                _run("ing-1", "ingest", T, "success"),
                _run("ing-old", "ingest", T - 20 * H, "success"),
                _run("pred-1", "predict", T - H, "failed"),
                _run("pred-2", "predict", T - H, "success"),  # the retry recovered
                _run("pred-3", "predict", T - 2 * H, "failed"),  # nothing recovered this
                _run("pred-4", "predict", T - 3 * H, "running"),  # never finished: lost
            ]
        ),
    )
    wh.append(
        "rejected_rows",
        pd.DataFrame(
            {
                "run_id": "ing-1",
                "source": "synthetic",
                "location_id": "a",
                "reason": ["pm2_5 out of range", "pm2_5 out of range"],
                "rejected_at": T + H,
            }
        ),
    )
    wh.append(
        "forecasts",
        pd.DataFrame(
            {
                "run_id": "pred-x",
                "model_version": "v1",
                "location_id": "a",
                "target": "pm2_5",
                "issued_at": T - 3 * H,
                "target_ts": [T - 2 * H, T - H, T],
                "horizon_h": [1, 2, 3],
                "yhat": 20.0,
                "yhat_lower": 5.0,
                "yhat_upper": 30.0,
                "created_at": T - 3 * H,
            }
        ),
    )
    return wh


def _place_states(keys: list[tuple[str, str, dt.datetime]], model: float | None = None):
    """place_combination_weights rows as predict writes them, groups 1-3 and 4-12: the
    model's weight 0.6 at issue times before T - 2 h and 0.2 after (persistence's then
    leads), or `model`."""
    rows = []
    for target, place, at in keys:
        m = model if model is not None else (0.6 if at < T - 2 * H else 0.2)
        for group in ("1-3", "4-12"):
            rows.append(
                place_weights_row(target, place, at, group, (m, (1 - m) * 0.75, (1 - m) * 0.25))
            )
    return pd.DataFrame(rows)


def test_every_signal_query_gives_the_same_answers_on_each_backend(settings: Settings):
    wh = _load(settings)

    fresh = signals.freshness(wh, T).set_index("location_id")
    assert fresh["lag_h"].to_dict() == {"a": 0.0, "b": 20.0}
    assert set(fresh["source"]) == {"synthetic"}

    runs = signals.runs(wh, T).set_index("function")
    assert runs.loc["ingest", ["runs", "failed", "unrecovered"]].tolist() == [2, 0, 0]
    assert runs.loc["predict", ["runs", "failed", "unrecovered"]].tolist() == [4, 3, 2]
    assert runs.loc["predict", "lost"] == 1 and runs.loc["ingest", "lost"] == 0
    assert runs["hours_since_success"].to_dict() == {"ingest": 0.0, "predict": 1.0}

    rejected = signals.rejected(wh, T)
    assert rejected[["source", "reason", "rejected", "accepted"]].values.tolist() == [
        ["synthetic", "pm2_5 out of range", 2, 17]
    ]

    # persistence says 17 (observed at issued_at) for 18, 19, 20; the model 20
    acc = signals.accuracy(wh, T, ["pm2_5"])  # a had no weights of its own: a new place
    cols = ["target", "model_version", "horizons", "new_place", "n", "covered", "banded"]
    assert acc[cols].values.tolist() == [["pm2_5", "v1", "1-3", True, 3, 3, 3]]
    assert float(acc["served_abs"][0]) == 3.0 and float(acc["persistence_abs"][0]) == 6.0
    assert float(acc["model_abs"][0]) == 3.0  # no yhat_model (before the combination): served
    assert int(acc["cams_n"][0]) == 0 and pd.isna(acc["cams_abs"][0])  # no CAMS kept: NULL
    # Its own weights from T - 2 h (after the issue), or pm10's, or b's: still new. From
    # the issue time T - 3 h on (each group's row, and a rerun's twin): no longer.
    wh.append("place_combination_weights", _place_states([("pm2_5", "a", T - 2 * H)]))
    wh.append("place_combination_weights", _place_states([("pm10", "a", T - 3 * H)]))
    wh.append("place_combination_weights", _place_states([("pm2_5", "b", T - 3 * H)]))
    assert signals.accuracy(wh, T, ["pm2_5"])["new_place"].tolist() == [True]
    wh.append("place_combination_weights", _place_states([("pm2_5", "a", T - 3 * H)] * 2))
    acc = signals.accuracy(wh, T, ["pm2_5"])
    assert acc[cols].values.tolist() == [["pm2_5", "v1", "1-3", False, 3, 3, 3]]

    # The places' own weights served now, per group: the newest state of each place within
    # a day of as_of (a's T - 2 h, b's T - 3 h; not pm10's, nor any from after as_of).
    wh.append("place_combination_weights", _place_states([("pm2_5", "b", T + H)], 0.0))
    summary = signals.place_weights(wh, "pm2_5", T).set_index("horizon_group")
    assert summary.loc["1-3", ["places", "lead_model", "lead_persistence"]].tolist() == [2, 1, 1]
    assert summary.loc["1-3", "lead_seasonal_naive"] == 0
    assert summary.loc["1-3", "model_min"] == 0.2 and summary.loc["1-3", "model_max"] == 0.6
    assert summary.loc["1-3", "model_mean"] == pytest.approx(0.4) and sorted(summary.index) == [
        "1-3",
        "4-12",
    ]
    assert signals.place_weights(wh, "pm2_5", T - 10 * H).empty  # none stored yet then
    # Their own band offsets: none stepped yet, then b's newest state (T - 1 h) has its
    # lower one at the clip: the means move and b is counted, in each group it is so.
    assert summary["offsets_at_clip"].tolist() == [0, 0]
    assert summary["lower_offset_mean"].tolist() == [0.0, 0.0]
    clipped = [
        place_weights_row("pm2_5", "b", T - H, g, (0.2, 0.6, 0.2), offsets=(-1.0, 0.4))
        for g in ("1-3", "4-12")
    ]
    wh.append("place_combination_weights", pd.DataFrame(clipped))
    summary = signals.place_weights(wh, "pm2_5", T).set_index("horizon_group")
    assert summary["offsets_at_clip"].tolist() == [1, 1]
    assert summary["lower_offset_mean"].tolist() == pytest.approx([-0.5, -0.5])
    assert summary["upper_offset_mean"].tolist() == pytest.approx([0.2, 0.2])

    recent = signals.recent_inputs(wh, ["pm2_5", "temperature_2m"], T - 3 * H, T, 2)
    assert recent.astype(float).values.tolist() == [[20.0, 1.5], [19.0, 1.5]]

    # Freshness reads the lookback's partitions alone: a place observed only before it, or
    # after as_of, is silent (no newest hour), and b's later row does not count either.
    wh.append(
        "locations",
        pd.DataFrame(
            {
                "location_id": ["c"],
                "name": ["C"],
                "source": "synthetic",
                "active": True,
                "updated_at": T - 100 * H,
            }
        ),
    )
    days = dt.timedelta(days=th.FRESHNESS_LOOKBACK_DAYS)
    late = pd.DataFrame(
        [("c", T - days, 1.0), ("c", T + H, 1.0), ("b", T + H, 1.0)],
        columns=["location_id", "ts", "pm2_5"],
    )
    wh.append(
        "observations_raw", late.assign(source="synthetic", run_id="ing-2", ingested_at=T + H)
    )
    fresh = signals.freshness(wh, T).set_index("location_id")
    assert fresh["lag_h"].drop("c").to_dict() == {"a": 0.0, "b": 20.0}
    assert pd.isna(fresh.loc["c", "newest"]) and pd.isna(fresh.loc["c", "lag_h"])


def test_bounded_accuracy_gives_the_views_rows_for_its_hours(settings: Settings):
    """`accuracy_sql(bounded=True)` (what the monitor and the snapshot read, filtered on both
    sides of the join so BigQuery reads only those hours) is the view cut to those hours."""
    wh = _load(settings)
    wh.append(  # a re-run of the same forecast (counts once) and one verified before the window
        "forecasts",
        pd.DataFrame(
            {
                "run_id": ["pred-y", "pred-z"],
                "model_version": "v1",
                "location_id": "a",
                "target": "pm2_5",
                "issued_at": [T - 3 * H, T - 5 * H],
                "target_ts": [T - H, T - 4 * H],
                "horizon_h": [2, 1],
                "yhat": [18.0, 15.0],
                "yhat_lower": 5.0,
                "yhat_upper": 30.0,
                "created_at": [T - 2.5 * H, T - 5 * H],
            }
        ),
    )
    cols = "location_id, model_version, issued_at, target_ts, yhat, actual, covered"
    for after, through in ((T - 5 * H, T), (T - 2 * H, T - H), (T, T + 5 * H)):
        window = {"hours_after": after, "hours_through": through}
        view = wh.query(
            f"SELECT {cols} FROM forecast_accuracy "
            "WHERE target_ts > @hours_after AND target_ts <= @hours_through ORDER BY target_ts",
            window,
        )
        bounded = wh.query(
            f"SELECT {cols} FROM ({accuracy_sql(bounded=True)}) AS a ORDER BY target_ts", window
        )
        pd.testing.assert_frame_equal(bounded, view)
    assert view.empty and len(bounded) == 0  # the last window has no observed hour
    everything = wh.query(f"SELECT {cols} FROM forecast_accuracy ORDER BY target_ts")
    assert everything["yhat"].tolist() == [15.0, 20.0, 18.0, 20.0]  # the re-run's row counts

    # With persistence's value (observed at the issue time) and one shard's locations: the
    # view joined with the observations, cut to those hours and locations.
    window = {"hours_after": T - 5 * H, "hours_through": T, "issued_after": T - 29 * H}
    both = persistence_sql(["pm2_5", "pm10"], locations=True)  # each row's target picked
    joined = f"SELECT {cols}, persisted FROM ({both}) AS a "
    mine = wh.query(joined + "ORDER BY target_ts", {**window, "ids": ["a"]})
    v_cols = ", ".join(f"v.{c}" for c in cols.split(", "))
    expected_sql = (
        f"SELECT {v_cols}, o.pm2_5 AS persisted FROM forecast_accuracy AS v "
        "LEFT JOIN observations AS o ON o.location_id = v.location_id AND o.ts = v.issued_at "
        "WHERE v.target_ts > @hours_after AND v.target_ts <= @hours_through "
        "ORDER BY v.target_ts"
    )
    expected = wh.query(expected_sql, window)
    pd.testing.assert_frame_equal(mine, expected)
    one = f"SELECT {cols}, persisted FROM ({persistence_sql(['pm2_5'], True)}) AS a "
    pd.testing.assert_frame_equal(
        wh.query(one + "ORDER BY target_ts", {**window, "ids": ["a"]}), mine
    )
    assert len(mine) == 4 and mine["persisted"].notna().all()
    assert wh.query(joined, {**window, "ids": ["b"]}).empty  # b has no forecasts

    # Persistence deduplicates only the issue hours (the filter comes before the dedup):
    # a later correction at an issue hour still supersedes, as in the view.
    wh.append(
        "observations_raw",
        pd.DataFrame(
            {
                "location_id": "a",
                "ts": [T - 3 * H, T - 4 * H],  # an issue hour, and an hour nothing was issued at
                "pm2_5": [16.5, 99.0],
                "source": "synthetic",
                "run_id": "ing-2",
                "ingested_at": T + 2 * H,
            }
        ),
    )
    corrected = wh.query(joined + "ORDER BY target_ts", {**window, "ids": ["a"]})
    pd.testing.assert_frame_equal(corrected, wh.query(expected_sql, window))
    by_issue = corrected.set_index("target_ts")["persisted"].astype(float)
    assert by_issue[T - 4 * H] == 15.0  # issued T - 5 h: untouched
    assert (by_issue.drop(T - 4 * H) == 16.5).all()  # issued T - 3 h: the correction


def test_the_snapshots_accuracy_gives_both_groupings_from_one_query(settings: Settings):
    """`recent_accuracy` reads by horizon and by location in one GROUPING SETS query (one
    scan of the window on BigQuery). Persistence says 17 (observed at the issue time) for
    18, 19 and 20; the model says 20."""
    services = cast(Services, SimpleNamespace(warehouse=_load(settings)))
    acc = recent_accuracy(services, "pm2_5", T, ["a"])
    assert acc is not None
    assert [(h.horizon_h, h.n, h.mae, h.coverage, h.persistence_mae) for h in acc.by_horizon] == [
        (1, 1, 2.0, 1.0, 1.0),
        (2, 1, 1.0, 1.0, 2.0),
        (3, 1, 0.0, 1.0, 3.0),
    ]
    assert acc.by_location == {"a": 1.0}
    assert not acc.network  # a shard's locations only
    whole = recent_accuracy(services, "pm2_5", T)  # every location: only a has rows
    assert whole == acc.model_copy(update={"network": True})
    assert recent_accuracy(services, "pm2_5", T, ["b"]) is None  # b has no forecasts


def test_forecast_accuracy_carries_the_cams_baseline_as_issued(settings: Settings):
    """`cams` is the CAMS forecast for the place and hour, the newest issued at or before
    the forecast's own issue time (a later CAMS issue is not seen), NULL where none was
    kept, never zero; the bounded query (the monitor's) gives the same."""
    wh = _load(settings)  # the model's forecasts: issued T - 3 h for T - 2 h, T - 1 h and T
    cams = pd.DataFrame(
        {
            "location_id": "a",
            "issued_at": [T - 4 * H, T - 4 * H, T - 3 * H, T - 2 * H, T - 2 * H],
            "ts": [T - 2 * H, T - H, T - H, T - H, T],
            "pm2_5": [11.0, 12.0, 13.0, 99.0, 99.0],
            "provider": "cams",
            "source": "open-meteo",
            "run_id": "ing-c",
            "ingested_at": T,
        }
    )
    wh.append("air_quality_forecasts", cams)
    wh.append("air_quality_forecasts", cams.iloc[[2]].assign(ingested_at=T + H))  # a retry
    cols = "target_ts, actual, cams, cams_abs_error"
    got = wh.query(f"SELECT {cols} FROM forecast_accuracy ORDER BY target_ts")
    assert got["actual"].tolist() == [18.0, 19.0, 20.0]
    assert got["cams"].tolist()[:2] == [11.0, 13.0]  # T - 1 h: the T - 3 h issue, not T - 4 h
    assert pd.isna(got["cams"].iloc[2]) and pd.isna(got["cams_abs_error"].iloc[2])
    assert got["cams_abs_error"].tolist()[:2] == [7.0, 6.0]
    bounded = wh.query(
        f"SELECT {cols} FROM ({accuracy_sql(bounded=True)}) AS a ORDER BY target_ts",
        {"hours_after": T - 5 * H, "hours_through": T},
    )
    pd.testing.assert_frame_equal(bounded, got)

    # The monitor's accuracy condition: aircast vs CAMS on the rows with a CAMS forecast
    # (the model says 20 for 18 and 19; CAMS 11 and 13), beside persistence.
    acc = signals.accuracy(wh, T, ["pm2_5"])
    assert acc[["n", "cams_n"]].values.tolist() == [[3, 2]]
    assert float(acc["cams_abs"][0]) == 13.0 and float(acc["model_abs_cams"][0]) == 3.0
    store = open_store(settings)  # no production model: v1 is judged only as history
    svc = cast(Services, SimpleNamespace(warehouse=wh, settings=settings, store=store))
    v1 = accuracy_condition.accuracy(svc, T).to_json()["versions"]["v1"]
    assert v1["cams"] == {"n": 2, "mae": 6.5, "model_mae": 1.5, "ratio": 0.231}
    assert v1["horizons"]["1-3"]["cams"]["n"] == 2

    # The snapshot's accuracy (the api's metrics and the dashboard): aircast vs CAMS by
    # horizon, beside persistence; the hour without CAMS says None, never zero.
    acc_h = recent_accuracy(svc, "pm2_5", T, ["a"])
    assert acc_h is not None
    assert [(h.cams_n, h.cams_mae, h.cams_model_mae) for h in acc_h.by_horizon] == [
        (1, 7.0, 2.0),
        (1, 6.0, 1.0),
        (0, None, None),
    ]
    from common.serving.render import merge_accuracy

    merged = merge_accuracy([acc_h, acc_h])
    assert merged is not None and merged.by_horizon[0].cams_n == 2
    assert merged.by_horizon[0].cams_mae == 7.0 and merged.by_horizon[2].cams_mae is None
    # The network's (shard 0's part) is served as it is, never pooled with a shard's own
    # (a part published before the network's moved to shard 0), which it already counts.
    network = recent_accuracy(svc, "pm2_5", T)
    assert network is not None and network.network
    assert merge_accuracy([None, acc_h, network, None]) == network


def test_the_monitors_horizon_groups_are_the_gates_with_one_beyond(settings: Settings):
    """The monitor groups forecasts as the gate and the per-place weights do (a group
    served as persistence is reported as that group); horizons beyond the gate's last
    group, up to the longest a deployment may configure, fall in one more."""
    from common.core.config import HORIZON_MAX_H
    from common.forecasting import combination

    assert signals.HORIZON_GROUPS[:-1] == combination.HORIZON_GROUPS
    assert signals.HORIZON_GROUPS[-1] == (25, HORIZON_MAX_H)
    wh = open_warehouse(settings)
    wh.ensure_schema()
    hours = [1, 3, 4, 12, 13, 24, 25, 48, HORIZON_MAX_H]
    named = wh.query(
        f"SELECT a.horizon_h, {signals._HORIZON_GROUP} AS g "
        "FROM (SELECT h AS horizon_h FROM UNNEST(@hours) AS h) AS a ORDER BY a.horizon_h",
        {"hours": hours},
    )
    assert named["g"].tolist() == ["1-3"] * 2 + ["4-12"] * 2 + ["13-24"] * 2 + ["25-168"] * 3
