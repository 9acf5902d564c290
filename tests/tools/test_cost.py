"""The cost section of docs/deploy.md is computed from what Terraform deploys (every function
of main.tf, every scheduler job of the schedules, per predict shard) and cannot drift."""

from __future__ import annotations

import pytest

from common.scheduling.schedules import FUNCTIONS, SCHEDULES
from tests.terraform_hcl import block, resources
from tools import cost
from tools.generate import TERRAFORM_DIR, load_hcl


@pytest.fixture(scope="module")
def module() -> dict:
    return load_hcl(TERRAFORM_DIR)


def test_the_committed_cost_section_is_the_generated_one(module: dict):
    committed = cost.DEPLOY.read_text(encoding="utf-8")
    assert cost.render(committed, module) == committed, "run `make generate`"


def test_every_function_and_every_job_is_counted(module: dict):
    lines = cost.lines(module, 50)
    assert {x.function for x in lines} == set(FUNCTIONS)  # monitor included
    jobs = [j for x in lines for j in x.jobs]
    assert sorted(jobs) == sorted(s.name for s in SCHEDULES) and len(jobs) == 5
    section = cost.section(module)
    for name in FUNCTIONS:
        assert f"| {name} |" in section
    for size in ("1,000", "100,000"):
        assert f"\n| {size} |" in section
    # 100,000 locations: ten predict shards, so ten predict jobs beside the four others.
    assert sum(len(x.jobs) for x in cost.lines(module, 100_000)) == 14


def test_runs_a_month_follow_the_cron():
    assert cost.fires_per_month("5 * * * *") == pytest.approx(730, abs=1)
    assert cost.fires_per_month("40 3 * * *") == pytest.approx(30.4, abs=0.1)
    assert cost.fires_per_month("10 2 * * 0") == pytest.approx(4.35, abs=0.05)


def test_the_free_tier_is_taken_off_once():
    line = cost.Line("x", ("a", "b", "c", "d"), 1000, 100.0, 1.0, 1.0)  # 100,000 vCPU-s
    free, scheduler_free, jobs = cost.dollars([line], free=True)
    full, scheduler_full, _ = cost.dollars([line], free=False)
    assert free == 0 and scheduler_free == pytest.approx(0.10) and jobs == 4
    assert full == pytest.approx(100_000 * 0.000024 + 100_000 * 0.0000025 + 0.001 * 0.40)
    assert scheduler_full == pytest.approx(0.40)


def test_the_budget_is_optional_with_thresholds():
    budget = resources("google_billing_budget")["aircast"]
    assert "var.billing_account != null && var.budget_amount_usd != null ? 1 : 0" in budget["count"]
    assert block(budget, "budget_filter")["projects"] == [
        "projects/${data.google_project.this.number}"
    ]
    rules = block(budget, "dynamic")["threshold_rules"]
    assert rules["for_each"] == "${var.budget_thresholds}"
