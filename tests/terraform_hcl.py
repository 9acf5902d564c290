"""terraform/*.tf as plain Python values (python-hcl2), for tests that check it against code.

python-hcl2 keeps string literals quoted ('"ingest"') and expressions as '${...}'; `load`
strips the quotes and the bookkeeping keys so tests compare plain values.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import hcl2

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            _plain(k): _plain(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@functools.cache
def load() -> dict[str, dict[str, Any]]:
    """{"resource": {(type, name): body}, "locals": {...}, "variable": {...}, "output": {...}}"""
    merged: dict[str, dict[str, Any]] = {"resource": {}, "locals": {}, "variable": {}, "output": {}}
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        with path.open(encoding="utf-8") as f:
            doc = _plain(hcl2.load(f))
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    merged["resource"][(rtype, rname)] = {**body, "__file__": path.name}
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
    return merged


def resources(rtype: str) -> dict[str, dict[str, Any]]:
    return {name: body for (t, name), body in load()["resource"].items() if t == rtype}


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    (inner,) = body[name]
    return inner


def entry_points() -> dict[str, str]:
    """Function name -> entry point, as Terraform deploys them."""
    return dict(load()["locals"]["entry_points"])
