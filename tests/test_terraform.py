"""terraform/ parsed with python-hcl2 and checked against the code it deploys."""

from __future__ import annotations

import json
import re

from common.core.config import Settings
from common.core.schema import TABLES, VIEWS, bigquery_schema
from common.scheduling.schedules import FUNCTIONS, SCHEDULES, TIME_ZONE
from tests.terraform_hcl import TERRAFORM_DIR, block, entry_points, load, resources
from tools.packaging import FUNCTIONS_DIR, function_names

PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")


def test_every_function_folder_has_a_function_resource_with_its_entry_point():
    deployed = entry_points()
    assert set(deployed) == set(FUNCTIONS)
    folders = function_names()
    assert folders and set(folders) <= set(deployed)
    for name in folders:
        assert deployed[name] == name
        source = (FUNCTIONS_DIR / name / "main.py").read_text(encoding="utf-8")
        assert re.search(rf"^def {deployed[name]}\(", source, re.M), f"{name}: no {name}()"

    fn = resources("google_cloudfunctions2_function")["function"]
    assert fn["for_each"] == "${local.entry_points}"
    build = block(fn, "build_config")
    assert build["entry_point"] == "${each.value}"
    assert build["runtime"] == "python312"
    storage = block(block(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.source[each.key].name}"
    service = block(fn, "service_config")
    assert service["service_account_email"] == (
        "${google_service_account.function[each.key].email}"
    )

    obj = resources("google_storage_bucket_object")["source"]
    assert obj["for_each"] == "${local.entry_points}"
    assert "filesha256(" in obj["name"], "a changed zip must get a new object name"


def test_every_schedule_targets_an_existing_function():
    generated = json.loads((TERRAFORM_DIR / "schedules.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in generated] == [s.name for s in SCHEDULES]
    for schedule in generated:
        assert schedule["function"] in entry_points()
        assert schedule["function"] != "api"
        assert schedule["time_zone"] == TIME_ZONE

    assert "schedules.json" in load()["locals"]["schedules"]
    job = resources("google_cloud_scheduler_job")["job"]
    assert job["for_each"] == "${local.schedules}"
    assert job["schedule"] == "${each.value.cron}"
    assert job["time_zone"] == "${each.value.time_zone}"
    assert block(job, "retry_config")["retry_count"] == "${each.value.retry_count}"
    target = block(job, "http_target")
    function_uri = (
        "${google_cloudfunctions2_function.function[each.value.function].service_config[0].uri}"
    )
    assert target["uri"] == function_uri
    oidc = block(target, "oidc_token")
    assert oidc["service_account_email"] == "${google_service_account.scheduler.email}"
    assert oidc["audience"] == function_uri


def _iam_resources():
    for (rtype, name), body in load()["resource"].items():
        if re.search(r"_iam_(member|binding|policy)$", rtype):
            yield rtype, name, body


def test_no_public_invoker_on_ingest_train_or_predict():
    public = []
    for rtype, name, body in _iam_resources():
        text = json.dumps(body)
        if any(m in text for m in PUBLIC_MEMBERS):
            public.append((rtype, name))
            # Only the api, and only when asked for.
            assert 'function["api"]' in body["name"], f"{rtype}.{name} is public"
            assert body["count"] == "${var.api_public ? 1 : 0}"
    assert public == [("google_cloud_run_v2_service_iam_member", "api_public")]

    invokers = {
        name: body
        for rtype, name, body in _iam_resources()
        if body.get("role") in ("roles/run.invoker", "roles/cloudfunctions.invoker")
    }
    scheduler = invokers.pop("scheduler_invokes")
    assert scheduler["for_each"] == '${toset(["ingest", "train", "predict"])}'
    assert scheduler["member"] == "${google_service_account.scheduler.member}"
    for name, body in invokers.items():  # everything else targets the api only
        assert 'function["api"]' in body["name"], name


def test_table_schemas_partitioning_and_views_equal_common():
    tables = json.loads((TERRAFORM_DIR / "tables.json").read_text(encoding="utf-8"))
    assert {n for n, t in tables.items() if t["kind"] == "table"} == set(TABLES)
    assert {n for n, t in tables.items() if t["kind"] == "view"} == set(VIEWS)
    for name, table in TABLES.items():
        on_disk = json.loads((TERRAFORM_DIR / "schemas" / f"{name}.json").read_text("utf-8"))
        assert on_disk == bigquery_schema(table)
        assert tables[name]["partition_by"] == table.partition_by
        assert tables[name]["cluster_by"] == list(table.cluster_by)
    assert tables["observations_raw"]["partition_by"] == "ts"
    assert tables["observations_raw"]["cluster_by"] == ["location_id"]
    assert tables["forecasts"]["partition_by"] == "target_ts"

    bq = resources("google_bigquery_table")
    assert bq["table"]["schema"] == '${file("${path.module}/schemas/${each.key}.json")}'
    assert 't.kind == "table"' in bq["table"]["for_each"]
    (partitioning,) = bq["table"]["dynamic"]
    assert partitioning["time_partitioning"]["content"][0] == {
        "type": "DAY",
        "field": "${time_partitioning.value}",
    }
    assert "each.value.partition_by" in partitioning["time_partitioning"]["for_each"]
    assert "each.value.cluster_by" in bq["table"]["clustering"]
    for wave, name in ((1, "view"), (2, "view_on_views")):
        assert f"t.wave == {wave}" in bq[name]["for_each"]
        assert "schemas/${each.key}.sql" in block(bq[name], "view")["query"]
    assert "${google_bigquery_table.view}" in bq["view_on_views"]["depends_on"]
    for view in VIEWS.values():  # a view on a view is created after it
        if any(d in VIEWS for d in view.depends_on):
            assert tables[view.name]["wave"] == 2


def test_function_environment_names_settings_the_code_reads():
    environment = load()["locals"]["environment"]
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+) =", environment))
    known = {"GOOGLE_CLOUD_PROJECT"} | {f"AIRCAST_{f.upper()}" for f in Settings.model_fields}
    assert {"AIRCAST_BACKEND", "GOOGLE_CLOUD_PROJECT", "AIRCAST_DATASET", "AIRCAST_BUCKET"} <= names
    assert names <= known, names - known
    assert 'AIRCAST_BACKEND = "gcp"' in environment
    secret = resources("google_cloudfunctions2_function")["function"]["service_config"][0]
    (dynamic,) = secret["dynamic"]
    assert dynamic["secret_environment_variables"]["content"][0]["key"] == "AIRCAST_AQICN_TOKEN"
    assert "aqicn_token" in Settings.model_fields


def test_module_is_documented_and_skips_carry_reasons():
    doc = load()
    for name, variable in doc["variable"].items():
        assert variable.get("description"), f"variable {name} has no description"
    assert {"function_urls", "dataset", "artifact_bucket"} <= set(doc["output"])
    for path in TERRAFORM_DIR.glob("*.tf"):
        for skip in re.findall(r"#checkov:skip=(.*)", path.read_text(encoding="utf-8")):
            check, _, reason = skip.partition(":")
            assert re.fullmatch(r"CKV2?_GCP_\d+", check), skip
            assert len(reason.split()) >= 8, f"{path.name}: skip {check} needs a real reason"
