"""cloudbuild.yaml runs the same make targets as a developer, then applies the example root
configuration (terraform/examples/basic) that calls the module in terraform/."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.terraform_hcl import EXAMPLE_DIR, load_example

ROOT = Path(__file__).resolve().parents[2]


def make_targets(step: dict) -> list[str]:
    """The make targets a build step runs, read from its command line."""
    if step["entrypoint"] == "make":
        return list(step["args"])
    assert step["entrypoint"] == "bash" and step["args"][0] == "-c", step
    return re.findall(r"\bmake\s+([a-z][a-z-]*)", step["args"][1])


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

    # CI runs what a developer runs: the README's commands, as targets the Makefile defines.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    ran = [make_targets(step) for step in steps[:4]]
    assert ran == [["install-dev"], ["lint"], ["test"], ["package"]]
    assert {t for step in ran for t in step} <= targets
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme and {"test", "demo"} <= targets

    init, plan, apply = steps[4:]
    chdir = f"-chdir={EXAMPLE_DIR.relative_to(ROOT).as_posix()}"
    assert [s["args"][0] for s in (init, plan, apply)] == [chdir] * 3
    assert "-backend-config=bucket=${_STATE_BUCKET}" in init["args"]
    variables = dict(a.removeprefix("-var=").split("=", 1) for a in plan["args"] if "-var=" in a)
    assert variables["project_id"] == "${PROJECT_ID}"
    assert set(variables) <= set(load_example()["variable"])
    assert "-out=tfplan" in plan["args"] and apply["args"][-1] == "tfplan"
