"""cloudbuild.yaml runs the same make targets as a developer, then applies terraform/."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.terraform_hcl import load

ROOT = Path(__file__).resolve().parent.parent


def test_cloudbuild_steps_substitutions_and_terraform_variables():
    text = (ROOT / "cloudbuild.yaml").read_text(encoding="utf-8")
    build = yaml.safe_load(text)
    steps = build["steps"]
    assert [s["id"] for s in steps] == [
        "install",
        "lint",
        "test",
        "package",
        "terraform-init",
        "terraform-plan",
        "terraform-apply",
    ]
    declared = set(build["substitutions"])
    used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", text))
    assert used == declared, (used - declared, declared - used)

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for step in steps[:4]:
        target = step["args"][0] if step["entrypoint"] == "make" else "install-dev"
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert target in str(step["args"]) or step["id"] == "install"

    init, plan, apply = steps[4:]
    assert "-backend-config=bucket=${_STATE_BUCKET}" in init["args"]
    variables = dict(a.removeprefix("-var=").split("=", 1) for a in plan["args"] if "-var=" in a)
    assert variables["project"] == "${PROJECT_ID}"
    assert set(variables) <= set(load()["variable"])
    assert "-out=tfplan" in plan["args"] and apply["args"][-1] == "tfplan"
