"""The promotion gate as a pure function: promote, reject against the baseline, reject
against production, tolerance, and the cases where production cannot be compared.
(Persistence by horizon group and the noise-aware comparison: test_gate_evidence.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from common.train.gate import GateDecision, ProductionScore, decide

MARGIN, TOLERANCE = 0.05, 0.02


def metrics(mae: float, naive: float = 20.0) -> dict[str, Any]:
    """Holdout metrics in `evaluate`'s shape, reduced to what the gate reads."""
    return {"model": {"mae": mae}, "seasonal_naive": {"mae": naive}}


def gate(mae: float, production: ProductionScore | None, naive: float = 20.0) -> GateDecision:
    return decide(metrics(mae, naive), production, version="v2", margin=MARGIN, tolerance=TOLERANCE)


def test_no_production_promotes_a_candidate_that_beats_the_baseline():
    decision = gate(15.0, None)
    assert decision.promote is True
    assert decision.reasons == ("MAE 15.000 beats seasonal naive 20.000 by the 5% margin",)
    assert (decision.production_before, decision.production_mae) == (None, None)
    assert (decision.candidate_mae, decision.seasonal_naive_mae) == (15.0, 20.0)


@pytest.mark.parametrize("mae", [19.5, 19.0 + 1e-9, 25.0])
def test_a_candidate_short_of_the_margin_over_seasonal_naive_is_rejected(mae: float):
    decision = gate(mae, None)  # must be <= 20 * 0.95 = 19
    assert decision.promote is False
    assert "does not beat seasonal naive 20.000" in decision.reasons[0]


def test_exactly_at_the_margin_promotes():
    assert gate(19.0, None).promote is True


def test_a_candidate_worse_than_production_beyond_the_tolerance_is_rejected():
    decision = gate(15.4, ProductionScore("v1", 15.0))  # 15.4 > 15.0 * 1.02
    assert decision.promote is False
    assert decision.reasons[1] == (
        "MAE 15.400 is worse than production v1 (15.000) by more than 2% on the same holdout"
    )
    assert (decision.production_before, decision.production_mae) == ("v1", 15.0)


def test_a_candidate_that_also_fails_the_baseline_stays_rejected_when_better_than_production():
    decision = gate(19.5, ProductionScore("v1", 30.0))
    assert decision.promote is False
    assert "does not beat" in decision.reasons[0] and "within 2%" in decision.reasons[1]


@pytest.mark.parametrize("mae", [14.0, 15.0, 15.29])
def test_a_candidate_within_the_tolerance_of_production_or_better_is_promoted(mae: float):
    decision = gate(mae, ProductionScore("v1", 15.0))
    assert decision.promote is True
    assert decision.reasons[1] == (
        f"MAE {mae:.3f} vs production 15.000: within 2% tolerance or better"
    )
    assert decision.production_mae == 15.0


def test_a_production_model_that_cannot_be_compared_leaves_the_baselines_to_decide():
    note = "production v1 forecasts another target or horizon; not comparable"
    decision = gate(15.0, ProductionScore("v1", note=note))
    assert decision.promote is True and decision.reasons[1] == note
    assert (decision.production_before, decision.production_mae) == ("v1", None)
    assert gate(19.5, ProductionScore("v1", note=note)).promote is False


def test_the_version_already_in_production_is_not_compared_with_itself():
    decision = gate(15.0, ProductionScore("v2", 15.0))
    assert decision.promote is True
    assert decision.reasons[1] == "this version is already in production"
    assert (decision.production_before, decision.production_mae) == ("v2", None)


def test_the_recorded_decision_keeps_its_json_shape():
    recorded = gate(15.4, ProductionScore("v1", 15.0)).record().to_json()
    assert recorded == {
        "promote": False,
        "reasons": [
            "MAE 15.400 beats seasonal naive 20.000 by the 5% margin",
            "MAE 15.400 is worse than production v1 (15.000) by more than 2% on the same holdout",
        ],
        "production_before": "v1",
        "production_mae": 15.0,
        "verdict": "reject",
        "persistence_by_group": [],
        "noise": None,
        "production_age_days": None,
        "served_as_persistence": [],
    }


def test_the_cams_baseline_is_reported_by_group_and_does_not_decide():
    """Where holdout rows have a CAMS forecast, the gate says per horizon group how the
    candidate does against CAMS on those rows; the decision stays with the rules above."""
    rows = [
        {
            "horizon_h": h,
            "n": 10,
            "mae": 5.0,
            "persistence_mae": 6.0,
            "cams_n": 4 if h <= 3 else 0,
            "cams_mae": 9.0 if h <= 3 else None,
            "cams_model_mae": 4.0 if h <= 3 else None,
        }
        for h in range(1, 25)
    ]
    m = {**metrics(15.0), "by_horizon": rows}
    decision = decide(m, None, version="v2", margin=MARGIN, tolerance=TOLERANCE)
    assert decision.promote is True
    assert "vs CAMS on the rows with a CAMS forecast: 1-3 h MAE 4.000 vs 9.000" in decision.reasons
    first = decision.record().to_json()["persistence_by_group"][0]
    assert (first["cams_n"], first["cams_mae"]) == (12, 9.0)
    assert "cams_n" not in decision.record().to_json()["persistence_by_group"][1]  # none: absent
