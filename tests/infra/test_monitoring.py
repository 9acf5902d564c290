"""terraform/monitoring.tf against the logs the code writes: every log-based metric and
alert policy filters only on messages and fields that some `event(...)` call (or the
JSON formatter and the run context) actually writes, and its levels are the code's."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from common.monitoring import thresholds
from common.monitoring.status import CONDITIONS
from tests.terraform_hcl import TERRAFORM_DIR, resources

ROOT = Path(__file__).resolve().parents[2]
FORMATTER_FIELDS = {"severity", "message", "time", "logger", "stack_trace"}
CONTEXT_FIELDS = {"run_id", "function"}  # common.runtime.runs.track_run's log_context


def logged() -> dict[str, set[str]]:
    """message -> the fields an `event(logger, "message", ..., field=...)` call writes."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "common").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "event":
                msg = node.args[1]
                if isinstance(msg, ast.Constant) and isinstance(msg.value, str):
                    fields = {k.arg for k in node.keywords if k.arg}
                    out.setdefault(msg.value, set()).update(fields)
    return out


def filters() -> list[str]:
    found = []
    for r in resources("google_logging_metric").values():
        found.append(r["filter"])
        found += [v for v in r.get("label_extractors", {}).values()]
    for r in resources("google_monitoring_alert_policy").values():
        for c in r["conditions"] if isinstance(r["conditions"], list) else [r["conditions"]]:
            for kind in ("condition_threshold", "condition_absent"):
                for body in c.get(kind, []) if isinstance(c.get(kind), list) else [c.get(kind)]:
                    if body:
                        found.append(body["filter"])
    return found


def test_metrics_and_policies_filter_only_on_logged_messages_and_fields():
    events = logged()
    texts = filters()
    assert len(resources("google_logging_metric")) >= 3 and texts
    for text in texts:
        messages = re.findall(r'jsonPayload\.message=\\?"([^"\\]+)', text)
        fields = set(re.findall(r"jsonPayload\.(\w+)", text)) - {"message"}
        assert messages or "EXTRACT" in text or "metric.type" in text, text
        for message in messages:
            assert message in events, f"{message!r} is never logged"
            written = events[message] | FORMATTER_FIELDS | CONTEXT_FIELDS
            assert fields <= written, f"{text}: {fields - written} not written with {message!r}"
        for field in fields:
            assert any(field in f for f in events.values()) or field in CONTEXT_FIELDS, field


def test_the_health_line_carries_what_the_health_metric_reads():
    assert {"condition", "state", "value"} <= logged()["health condition"]


def test_policies_cover_every_condition_and_thresholds_are_the_codes():
    generated = json.loads((TERRAFORM_DIR / "thresholds.json").read_text(encoding="utf-8"))
    assert generated == thresholds.as_dict()
    policies = resources("google_monitoring_alert_policy")
    health = policies["health"]
    assert "for_each" in health
    text = (TERRAFORM_DIR / "monitoring.tf").read_text(encoding="utf-8")
    for name in CONDITIONS:
        assert re.search(rf"^\s+{name}\s+=", text, re.M), f"no alert policy for {name}"
    assert {"run_failed", "no_success"} <= set(policies)
    assert resources("google_monitoring_uptime_check_config")["api_health"]["http_check"]
