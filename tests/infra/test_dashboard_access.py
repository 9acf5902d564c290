"""How a person opens the dashboard of a deployed system, and how the uptime check reaches
/health, read from terraform/ (python-hcl2) and evaluated for both values of api_public.

The choice (docs/deploy.md, "Open the dashboard"): the api stays private by default and a
person with run.invoker opens it through `gcloud run services proxy` (the `dashboard`
output); `api_public = true` opens it to everyone read-only (the dashboard and the GET
routes; AIRCAST_API_READ_ONLY refuses POST /v1/predict). The uptime check calls /health
with the Monitoring service agent's OIDC token on a private api (which grants that agent
run.invoker on the api alone) and without one on a public api.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from common.core.config import Settings
from tests.terraform_hcl import EXAMPLE_DIR, TERRAFORM_DIR, block, load, load_example, resources

API_SERVICE = '${google_cloudfunctions2_function.function["api"].service_config[0].service}'
MONITORING_AGENT = (
    "serviceAccount:service-${data.google_project.this.number}"
    "@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
)


def _pick(expression: str, public: bool) -> str:
    """`${var.api_public ? A : B}` (or `var.api_public ? A : B` inside one) -> A or B."""
    m = re.fullmatch(r"\$?\{?var\.api_public \? (.+?) : (.+?)\}?", expression.strip())
    assert m, f"not decided by var.api_public alone: {expression}"
    return m[1] if public else m[2]


def _iam() -> dict[str, dict[str, Any]]:
    return resources("google_cloud_run_v2_service_iam_member")


def test_api_public_is_an_opt_in_bool_documented_as_read_only():
    variable = load()["variable"]["api_public"]
    assert variable["type"] == "bool" and variable["default"] is False
    assert "read-only" in variable["description"] and "403" in variable["description"]
    assert load_example()["variable"]["api_public"]["default"] is False
    # The api reads the setting the module sets (one name, in common.core.config).
    assert "api_read_only" in Settings.model_fields
    assert Settings.model_fields["api_read_only"].default is False


@pytest.mark.parametrize("public", [False, True])
def test_each_choice_has_one_way_in_for_people_and_for_the_uptime_check(public: bool):
    iam = _iam()
    # Everyone may call the api only when asked for, and then only the api.
    everyone = iam["api_public"]
    assert everyone["member"] == "allUsers" and everyone["name"] == API_SERVICE
    assert _pick(everyone["count"], public) == ("1" if public else "0")
    # ... and then it is read-only: the api function (alone) gets AIRCAST_API_READ_ONLY.
    env = _pick(load()["locals"]["api_environment"], public)
    assert ('AIRCAST_API_READ_ONLY = "true"' in env) is public, env
    function = resources("google_cloudfunctions2_function")["function"]
    merged = block(function, "service_config")["environment_variables"]
    assert "each.value.environment" in merged
    assert load()["locals"]["function_defaults"]["api"]["environment"] == "${local.api_environment}"
    others = [f for n, f in load()["locals"]["function_defaults"].items() if n != "api"]
    assert all(f["environment"] == {} for f in others)

    # The uptime check: /health on the api's host, 2xx only.
    check = resources("google_monitoring_uptime_check_config")["api_health"]
    http = block(check, "http_check")
    assert http["path"] == "/health" and http["use_ssl"] is True
    assert block(http, "accepted_response_status_codes")["status_class"] == "STATUS_CLASS_2XX"
    labels = block(check, "monitored_resource")["labels"]
    assert labels["host"] == "${local.api_host}"
    assert 'function["api"].service_config[0].uri' in load()["locals"]["api_host"]
    # With credentials exactly when the api is private ...
    (dynamic,) = http["dynamic"]
    auth = dynamic["service_agent_authentication"]
    tokens = _pick(auth["for_each"], public)
    assert tokens == ("[]" if public else '["OIDC_TOKEN"]'), tokens
    assert auth["content"][0]["type"] == "${service_agent_authentication.value}"
    # ... whose agent may call the api (and nothing else), granted before the check runs.
    agent = iam["api_uptime_check"]
    assert _pick(agent["count"], public) == ("0" if public else "1")
    assert agent["role"] == "roles/run.invoker" and agent["name"] == API_SERVICE
    assert agent["member"] == "${local.monitoring_agent}"
    assert load()["locals"]["monitoring_agent"] == MONITORING_AGENT
    assert load()["data"][("google_project", "this")]["project_id"] == "${var.project_id}"
    assert "${google_cloud_run_v2_service_iam_member.api_uptime_check}" in check["depends_on"]
    members = [b["member"] for b in iam.values()]
    assert members.count("${local.monitoring_agent}") == 1


@pytest.mark.parametrize("public", [False, True])
def test_the_dashboard_output_says_how_to_open_the_page(public: bool):
    output = load()["output"]["dashboard"]
    value = _pick(output["value"], public)
    if public:
        assert value.startswith('"${google_cloudfunctions2_function.function["api"]')
        assert value.endswith('.uri}/"')
    else:
        assert "gcloud run services proxy" in value and "--port 8080" in value
        assert 'function["api"].name' in value and "localhost:8080" in value
    assert load_example()["output"]["dashboard"]["value"] == "${module.aircast.dashboard}"


def test_deploy_docs_say_how_a_person_opens_the_page_and_why_not_iap():
    doc = (TERRAFORM_DIR.parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = doc.split("## Open the dashboard", 1)[1].split("\n## ", 1)[0]
    for phrase in (
        "gcloud run services proxy",
        "api_invokers",
        "api_public",
        "IAP",
        "max_instances",
        "403",
        "terraform output dashboard",
    ):
        assert phrase in section, phrase
    assert (EXAMPLE_DIR / "outputs.tf").is_file()
