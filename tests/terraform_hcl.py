"""terraform/*.tf (the module) and terraform/examples/basic/*.tf (the root that calls it) as
plain Python values (python-hcl2), for tests that check them against the code.

python-hcl2 keeps string literals quoted ('"ingest"') and expressions as '${...}';
tools.generate.load_hcl strips the quotes and the bookkeeping keys so tests compare plain
values. Each folder is parsed on its own: the example is not part of the module.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tools.generate import TERRAFORM_DIR, load_hcl

EXAMPLE_DIR = TERRAFORM_DIR / "examples" / "basic"


@functools.cache
def _load(directory: Path) -> dict[str, Any]:
    return load_hcl(directory)


def load() -> dict[str, Any]:
    """The module: {"resource": {(type, name): body}, "locals": {...}, "variable": {...},
    "output": {...}, "module", "provider", "terraform", "moved"}."""
    return _load(TERRAFORM_DIR)


def load_example() -> dict[str, Any]:
    """The example root configuration, same shape as load()."""
    return _load(EXAMPLE_DIR)


def resources(rtype: str) -> dict[str, dict[str, Any]]:
    return {name: body for (t, name), body in load()["resource"].items() if t == rtype}


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    (inner,) = body[name]
    return inner


def functions() -> dict[str, dict[str, Any]]:
    """The module's one list of functions: name -> attributes (main.tf)."""
    return dict(load()["locals"]["function_defaults"])


def entry_points() -> dict[str, str]:
    """Function name -> entry point, as Terraform deploys them."""
    return {name: f["entry_point"] for name, f in functions().items()}
