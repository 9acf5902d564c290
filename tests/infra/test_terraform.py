"""terraform/ parsed with python-hcl2 and checked against the code it deploys: the module,
its one list of functions, the IAM derived from it, and the example root that calls it."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from pydantic import SecretStr

from common.core.catalog import CLOUD_SOURCES, SOURCES
from common.core.config import Settings
from common.core.deploy import TIMEOUT_SECONDS
from common.core.schema import TABLES, bigquery_schema
from common.core.views import VIEWS
from common.forecasting.snapshot import SNAPSHOT_KEY
from common.ingest.imports import IMPORTS_PREFIX
from common.monitoring import STATUS_KEY
from common.runtime.locations import STORE_KEY
from common.scheduling.schedules import (
    FUNCTIONS,
    MAX_ATTEMPT_DEADLINE_S,
    SCHEDULES,
    TIME_ZONE,
    expand,
)
from tests.terraform_hcl import (
    EXAMPLE_DIR,
    TERRAFORM_DIR,
    block,
    entry_points,
    functions,
    load,
    load_example,
    resources,
)
from tools.generate import MODULE_README, render_readme
from tools.packaging import FUNCTIONS_DIR, function_names

PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
SCHEDULED = "${toset([for s in values(local.schedules) : s.function])}"
# Resource types without a project argument (they live in a bucket, not a project).
# (A budget lives in a billing account and names the project in its filter.)
PROJECTLESS = {
    "google_storage_bucket_object",
    "google_storage_bucket_iam_member",
    "google_billing_budget",
}


def test_one_list_of_functions_matches_the_code_and_the_function_folders():
    assert list(functions()) == list(FUNCTIONS)
    deployed = entry_points()
    folders = function_names()
    assert folders and set(folders) == set(deployed)
    for name in folders:
        assert deployed[name] == name
        source = (FUNCTIONS_DIR / name / "main.py").read_text(encoding="utf-8")
        assert re.search(rf"^def {deployed[name]}\(", source, re.M), f"{name}: no {name}()"
    # The deployed map is that list with the caller's resource overrides on top.
    merged = load()["locals"]["functions"]
    assert "in local.function_defaults" in merged and "var.functions[name]" in merged


def test_every_function_has_a_function_resource_with_its_entry_point():
    fn = resources("google_cloudfunctions2_function")["function"]
    assert fn["for_each"] == "${local.functions}"
    build = block(fn, "build_config")
    assert build["entry_point"] == "${each.value.entry_point}"
    assert build["runtime"] == "python312"
    storage = block(block(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.source[each.key].name}"
    service = block(fn, "service_config")
    assert service["service_account_email"] == (
        "${google_service_account.function[each.key].email}"
    )
    for argument, attribute in (
        ("available_memory", "memory"),
        ("available_cpu", "cpu"),
        ("timeout_seconds", "timeout_seconds"),
        ("max_instance_count", "max_instances"),
        ("min_instance_count", "min_instances"),
        ("max_instance_request_concurrency", "concurrency"),
    ):
        assert service[argument] == f"${{each.value.{attribute}}}", argument
    # gunicorn (functions-framework) takes as many requests at once as Cloud Run sends.
    assert "THREADS = tostring(each.value.concurrency)" in service["environment_variables"]
    # An override naming no function must fail the plan rather than be ignored.
    (precondition,) = block(fn, "lifecycle")["precondition"]
    assert "setsubtract(keys(var.functions), keys(local.functions))" in precondition["condition"]

    obj = resources("google_storage_bucket_object")["source"]
    assert obj["for_each"] == "${local.functions}"
    assert "filesha256(" in obj["name"], "a changed zip must get a new object name"
    assert resources("google_service_account")["function"]["for_each"] == "${local.functions}"


def _schedules() -> list[dict[str, Any]]:
    return json.loads((TERRAFORM_DIR / "schedules.json").read_text(encoding="utf-8"))


def _holds(condition: str, function: dict[str, Any]) -> bool:
    """One `if` filter of a for expression over local.functions, evaluated."""
    if m := re.fullmatch(r'f\.(\w+) == "(\w+)"', condition):
        return function[m[1]] == m[2]
    if m := re.fullmatch(r"f\.(\w+) != null", condition):
        return function[m[1]] is not None
    if m := re.fullmatch(r"f\.(\w+)", condition):
        assert isinstance(function[m[1]], bool), condition
        return function[m[1]]
    raise AssertionError(f"a filter this test cannot evaluate: {condition}")


def instance_keys(body: dict[str, Any]) -> set[str]:
    """The keys a per-function resource's for_each yields with the module's defaults
    (var.functions overrides resources only, never access), or per schedule."""
    for_each = body["for_each"]
    if for_each == "${local.functions}":
        return set(functions())
    if m := re.fullmatch(
        r"\$\{\{for name, f in local\.functions : name => f if (.+)\}\}", for_each
    ):
        return {name for name, f in functions().items() if _holds(m[1], f)}
    if "for table in f.tables_written" in for_each:
        return {f"{n}/{t}" for n, f in functions().items() for t in f["tables_written"]}
    if for_each == SCHEDULED:
        return {s["function"] for s in _schedules()}
    if for_each == "${local.schedules}":  # one job per schedule, calling its function
        return {s["name"] for s in _schedules()}
    raise AssertionError(f"not derived from local.functions or the schedules: {for_each}")


def _per_function() -> dict[str, dict[str, Any]]:
    """Every resource that names a function's service account or service, by address."""
    return {
        f"{rtype}.{name}": body
        for (rtype, name), body in load()["resource"].items()
        if re.search(
            r"google_(service_account|cloudfunctions2_function)\.function\[", json.dumps(body)
        )
        or (
            rtype in ("google_service_account", "google_cloudfunctions2_function")
            and name == "function"
        )
    }


def test_every_per_function_resource_is_derived_from_the_one_list():
    api_only = {
        "google_cloud_run_v2_service_iam_member.api_invokers",
        "google_cloud_run_v2_service_iam_member.api_public",
        "google_cloud_run_v2_service_iam_member.api_uptime_check",
    }
    per_function = _per_function()
    assert len(per_function) >= 12, sorted(per_function)
    for address, body in per_function.items():
        text = json.dumps(body)
        if address in api_only:  # the api by name, as var.api_public and var.api_invokers say
            assert 'function[\\"api\\"]' in text, address
            continue
        assert instance_keys(body), address
        quoted = re.findall(r'\\"(ingest|train|predict|api)\\"', text)
        assert not quoted, f"{address} names functions {quoted}: derive it from local.functions"
    assert not re.search(
        r"ingest|train|predict", json.dumps(load()["variable"]["functions"]["type"])
    )


# What each function's service account is granted: least privilege, as iam.tf documents.
GRANTS = {
    "google_project_iam_member.bigquery_job_user": {"ingest", "train", "predict", "monitor"},
    "google_project_iam_member.bigquery_read_session_user": {
        "ingest",
        "train",
        "predict",
        "monitor",
    },
    "google_bigquery_dataset_iam_member.writes": {"ingest"},
    "google_bigquery_dataset_iam_member.reads": {"train", "predict", "monitor"},
    "google_bigquery_table_iam_member.writes": {
        "train/runs",
        "train/air_quality_forecast_days",
        "predict/runs",
        "predict/forecasts",
        "predict/interval_offsets",
        "predict/combination_weights",
        "predict/place_combination_weights",
        "monitor/runs",
    },
    "google_storage_bucket_iam_member.writes_artifacts": {"train"},
    "google_storage_bucket_iam_member.reads_artifacts": {"predict", "monitor", "api"},
    "google_storage_bucket_iam_member.writes_under": {"predict", "monitor"},
    "google_storage_bucket_iam_member.reads_imports": {"ingest"},
    "google_secret_manager_secret_iam_member.reads_aqicn_token": {"ingest"},
    "google_secret_manager_secret_iam_member.reads_openaq_api_key": {"ingest"},
    "google_cloud_run_v2_service_iam_member.scheduler_invokes": {
        "ingest",
        "train",
        "predict",
        "monitor",
    },
}


def test_iam_follows_the_function_attributes_and_grants_least_privilege():
    per_function = _per_function()
    granted = {
        address: instance_keys(body)
        for address, body in per_function.items()
        if re.search(r"_iam_(member|binding|policy)$", address.split(".")[0])
        and not address.split(".")[1].startswith("api_")  # the api function's callers
    }
    assert granted == GRANTS
    for name, f in functions().items():
        assert set(f["tables_written"]) <= set(TABLES), name
    writes = resources("google_bigquery_table_iam_member")["writes"]
    assert writes["table_id"] == "${google_bigquery_table.table[each.value.table].table_id}"
    # Each publisher writes only under the folder its code publishes to.
    under = resources("google_storage_bucket_iam_member")["writes_under"]
    assert "/objects/${each.value.writes_under}" in block(under, "condition")["expression"]
    # Ingest reads and lists what a user uploads (imports/locations.toml, csv under
    # imports/) and nothing else of the bucket: an object read is checked on the object's
    # name, a listing on the bucket with the request's prefix.
    imports = block(resources("google_storage_bucket_iam_member")["reads_imports"], "condition")
    prefix = STORE_KEY.split("/")[0]
    assert prefix == IMPORTS_PREFIX.rstrip("/")
    expression = imports["expression"]
    assert f'/objects/{prefix}/\\")' in expression, expression
    assert (
        f'api.getAttribute(\\"storage.googleapis.com/objectListPrefix\\", \\"\\")'
        f'.startsWith(\\"{prefix}/\\")' in expression
    ), expression
    obj = resources("google_storage_bucket_object")["locations"]
    assert obj["name"] == STORE_KEY and obj["content"] == "${var.locations_toml}"
    published = {"predict": SNAPSHOT_KEY, "monitor": STATUS_KEY}
    for name, key in published.items():
        assert key.startswith(functions()[name]["writes_under"]), (name, key)

    # Renamed bindings keep their state: each moved block lands on a key that exists, or
    # on the start of a later move (a chain of renames).
    moves = load()["moved"]
    sources = {m["from"] for m in moves}
    for moved in moves:
        target = re.fullmatch(r'\$\{(\w+)\.(\w+)\["(\w+)"\]\}', moved["to"])
        assert target, moved["to"]
        if moved["to"] in sources:
            continue
        assert target[3] in instance_keys(load()["resource"][(target[1], target[2])])
        assert tuple(moved["from"][2:-1].split(".")) not in load()["resource"]


def test_every_schedule_targets_an_existing_function():
    generated = _schedules()
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


def test_no_public_invoker_on_the_scheduled_functions():
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
    assert scheduler["for_each"] == SCHEDULED
    assert instance_keys(scheduler) == {"ingest", "train", "predict", "monitor"}
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
        assert tables[name]["retention_days"] == table.retention_days
    assert tables["observations_raw"]["partition_by"] == "ts"
    for name in ("observations_raw", "rejected_rows", "forecasts", "runs"):
        assert tables[name]["retention_days"] > 0
    assert tables["observations_raw"]["cluster_by"] == ["location_id"]
    assert tables["forecasts"]["partition_by"] == "target_ts"

    bq = resources("google_bigquery_table")
    assert bq["table"]["schema"] == '${file("${path.module}/schemas/${each.key}.json")}'
    assert 't.kind == "table"' in bq["table"]["for_each"]
    (partitioning,) = bq["table"]["dynamic"]
    assert partitioning["time_partitioning"]["content"][0] == {
        "type": "DAY",
        "field": "${time_partitioning.value}",
        "expiration_ms": "${each.value.retention_days == null ? null : "
        "each.value.retention_days * 86400000}",
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
    bound = {
        d["secret_environment_variables"]["content"][0]["key"]: d["secret_environment_variables"]
        for d in secret["dynamic"]
    }
    assert set(bound) == {"AIRCAST_AQICN_TOKEN", "AIRCAST_OPENAQ_API_KEY"}
    # Every token setting of a source is bound from its secret, and only by the flag for it.
    for info in SOURCES.values():
        if info.token_setting:
            block = bound[f"AIRCAST_{info.token_setting.upper()}"]
            assert f"each.value.reads_{info.token_setting}" in block["for_each"]
            assert f"var.{info.token_setting}_set" in block["for_each"]
            assert Settings.model_fields[info.token_setting].annotation == SecretStr | None


def test_module_is_documented_and_skips_carry_reasons():
    doc = load()
    for name, variable in doc["variable"].items():
        assert variable.get("description"), f"variable {name} has no description"
    assert {"function_urls", "dataset", "artifact_bucket"} <= set(doc["output"])
    for path in TERRAFORM_DIR.rglob("*.tf"):
        for skip in re.findall(r"#checkov:skip=(.*)", path.read_text(encoding="utf-8")):
            check, _, reason = skip.partition(":")
            assert re.fullmatch(r"CKV2?_GCP_\d+", check), skip
            assert len(reason.split()) >= 8, f"{path.name}: skip {check} needs a real reason"


def test_module_has_no_provider_or_backend_and_names_its_project_everywhere():
    module = load()
    assert module["provider"] == {}
    for path in TERRAFORM_DIR.glob("*.tf"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'^\s*(provider|backend)\s+"', text, re.M), path.name
    (settings,) = module["terraform"]
    assert "backend" not in settings
    (providers,) = settings["required_providers"]
    assert providers["google"]["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+", providers["google"]["version"])
    assert settings["required_version"].startswith(">= ")
    # Without a provider default, every resource that has a project names it.
    for (rtype, name), body in module["resource"].items():
        if rtype not in PROJECTLESS:
            assert body.get("project") == "${var.project_id}", f"{rtype}.{name}"


def test_example_configures_provider_and_backend_and_calls_the_module_with_what_it_needs():
    module, example = load(), load_example()
    assert example["resource"] == {}, "the example only calls the module"
    assert example["provider"]["google"]["project"] == "${var.project_id}"
    (settings,) = example["terraform"]
    assert "gcs" in settings["backend"][0]
    assert settings["required_providers"] == module["terraform"][0]["required_providers"]

    call = example["module"]["aircast"]
    assert call["source"] == "../.."
    assert (EXAMPLE_DIR / call["source"]).resolve() == TERRAFORM_DIR
    arguments = {k: v for k, v in call.items() if k != "source"}
    required = {name for name, v in module["variable"].items() if "default" not in v}
    assert required == {"project_id"}
    assert required <= set(arguments), required - set(arguments)
    assert set(arguments) <= set(module["variable"])
    # Each argument is the example's variable of the same name, with the module's type and
    # default, so the example never changes a default behind the module's back.
    assert set(example["variable"]) == set(arguments)
    for name, value in arguments.items():
        assert value == f"${{var.{name}}}", name
        theirs, ours = module["variable"][name], example["variable"][name]
        assert ours["type"] == theirs["type"], name
        assert ours.get("default", "required") == theirs.get("default", "required"), name

    assert set(example["output"]) == set(module["output"])
    for name, output in example["output"].items():
        assert output["value"] == f"${{module.aircast.{name}}}", name


def test_module_readme_tables_match_variables_and_outputs():
    committed = MODULE_README.read_text(encoding="utf-8")
    module = load()
    assert render_readme(committed, module) == committed, "run `make generate`"
    for name in [*module["variable"], *module["output"], *functions()]:
        assert f"| {name} |" in committed, name
    assert "examples/basic" in committed


def test_ingest_source_accepts_exactly_the_cloud_sources_of_the_catalog():
    # A validation block may reference only its own variable (Terraform < 1.9), so the list
    # is written in variables.tf and kept equal to the catalog here.
    validation = block(load()["variable"]["ingest_source"], "validation")
    listed = re.fullmatch(
        r"\$\{contains\(\[(.*)\], var\.ingest_source\)\}", validation["condition"]
    )
    assert listed, validation["condition"]
    assert re.findall(r'"([a-z-]+)"', listed[1]) == list(CLOUD_SOURCES)
    assert load()["variable"]["ingest_source"]["default"] in CLOUD_SOURCES


def test_concurrency_only_where_an_instance_can_serve_it():
    """Cloud Run needs at least one vCPU for more than one request at a time; the job
    functions take one run per instance (CPU-bound, minutes long)."""
    for name, f in functions().items():
        if f["concurrency"] > 1:
            assert f["cpu"] is not None and float(f["cpu"]) >= 1, name
        else:
            assert name != "api", "the api answers lookups concurrently"
    assert functions()["api"]["concurrency"] >= 8


def test_predict_shards_come_from_one_variable_as_the_code_expands_them():
    """Terraform expands a sharded schedule as common.scheduling.schedules.expand does (same
    job names and bodies) and tells every function the shard count."""
    variable = load()["variable"]["predict_shards"]
    assert variable["default"] == 1 and variable["type"] == "number"
    local = load()["locals"]["schedules"]
    pieces = (
        '"${s.name}-shard-${k}"',
        "range(var.predict_shards)",
        "s.sharded && var.predict_shards > 1",
    )
    for piece in pieces:
        assert piece in local, (piece, local)
    sharded = [s for s in _schedules() if s["sharded"]]
    assert [s["function"] for s in sharded] == ["predict"]
    expanded = expand(SCHEDULES, 2)
    assert [s.name for s in expanded if s.sharded] == [
        f"{sharded[0]['name']}-shard-{k}" for k in range(2)
    ]
    environment = load()["locals"]["environment"]
    assert "AIRCAST_PREDICT_SHARDS" in environment and "var.predict_shards" in environment
    assert Settings.model_fields["predict_shards"].default == variable["default"]


def test_the_shard_limit_keeps_the_forecasts_table_inside_its_load_job_quota():
    """BigQuery allows 1,500 load jobs per table per day. A run's own rows (`runs`,
    `interval_offsets`) take the Storage Write API (tests/warehouse), so the table that
    still takes a load job per predict run is `forecasts`: one per shard and target each
    time a shard fires (tests/predict/test_shards.py). At the largest predict_shards
    Terraform accepts, a day of the predict schedule leaves room for retries and replays
    with one target; one more shard would not. With several targets (AIRCAST_TARGETS) the
    limit is on shards x targets, as the variable says."""
    condition = block(load()["variable"]["predict_shards"], "validation")["condition"]
    limit = int(re.search(r"var\.predict_shards <= (\d+)", condition)[1])
    day = dt.datetime(2024, 3, 3, tzinfo=dt.UTC)  # a Sunday: the tune fires too

    def forecast_load_jobs(shards: int, targets: int = 1) -> int:
        end = day + dt.timedelta(hours=23, minutes=59)
        fires = sum(
            len(list(s.fire_times(day, end)))
            for s in expand(SCHEDULES, shards)
            if s.function == "predict"
        )
        return fires * targets

    assert forecast_load_jobs(limit) <= 1_500 - 60  # 60 for retries and replays
    assert forecast_load_jobs(limit + 1) > 1_500 - 60
    assert str(limit) in load()["variable"]["predict_shards"]["description"]
    assert "targets" in load()["variable"]["predict_shards"]["description"]


def test_no_schedule_gives_up_on_a_run_before_its_function_times_out():
    """Cloud Scheduler retries an attempt past its deadline (HTTP targets: 15 s .. 30 min)
    while the function may still be running inside its own timeout: every job's deadline
    is at least its function's timeout up to that limit, in the generated schedules.json
    and in scheduler.tf, where a var.functions timeout override moves it too."""
    timeouts = json.loads((TERRAFORM_DIR / "functions.json").read_text())["timeout_seconds"]
    assert timeouts == TIMEOUT_SECONDS
    for s in _schedules():
        want = min(timeouts[s["function"]], MAX_ATTEMPT_DEADLINE_S)
        assert want <= s["attempt_deadline_s"] <= MAX_ATTEMPT_DEADLINE_S, s
    job = resources("google_cloud_scheduler_job")["job"]
    deadline = job["attempt_deadline"]
    for piece in (
        f"min({MAX_ATTEMPT_DEADLINE_S},",
        "each.value.attempt_deadline_s",
        "local.functions[each.value.function].timeout_seconds",
    ):
        assert piece in deadline, (piece, deadline)
