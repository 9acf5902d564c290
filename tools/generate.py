"""Write Terraform's generated inputs from common's single sources of truth.

`python -m tools.generate` (or `make generate`) rewrites terraform/schemas/ (tables and
views from common.core.schema) and terraform/schedules.json (from
common.scheduling.schedules); a test fails when the committed files drift from the code.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from common.core.schema import TABLES, VIEWS, bigquery_schema
from common.scheduling.schedules import terraform_schedules
from common.warehouse.sql import qualify

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"


def generated_files() -> dict[str, str]:
    """Relative path under terraform/ -> content."""
    files = {f"schemas/{name}": text for name, text in terraform_files().items()}
    files["schedules.json"] = json.dumps(terraform_schedules(), indent=2) + "\n"
    files["tables.json"] = json.dumps(terraform_tables(), indent=2, ensure_ascii=False) + "\n"
    return files


def terraform_tables() -> dict[str, dict[str, object]]:
    """What Terraform needs beside the schema files: descriptions, partitioning, clustering,
    and for views their creation wave (a view on a view is created after the views it reads)."""
    tables: dict[str, dict[str, object]] = {
        t.name: {
            "kind": "table",
            "description": t.description,
            "partition_by": t.partition_by,
            "cluster_by": list(t.cluster_by),
        }
        for t in TABLES.values()
    }
    waves: dict[str, int] = {}

    def wave(name: str) -> int:
        if name in TABLES:
            return 0
        if name not in waves:
            waves[name] = 1 + max((wave(d) for d in VIEWS[name].depends_on), default=0)
        return waves[name]

    for v in VIEWS.values():
        if wave(v.name) > 2:
            raise ValueError(f"view {v.name}: Terraform creates views in two waves at most")
        tables[v.name] = {"kind": "view", "description": v.description, "wave": wave(v.name)}
    return tables


def write(root: Path = TERRAFORM_DIR) -> list[Path]:
    shutil.rmtree(root / "schemas", ignore_errors=True)
    written = []
    for rel, text in generated_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def terraform_files() -> dict[str, str]:
    """Terraform's copies: one JSON schema per table and one SQL file per view.

    View SQL uses `${project}` and `${dataset}` for Terraform's templatefile().
    """
    files = {
        f"{t.name}.json": json.dumps(bigquery_schema(t), indent=2, ensure_ascii=False) + "\n"
        for t in TABLES.values()
    }
    for v in VIEWS.values():
        files[f"{v.name}.sql"] = qualify(v.sql, "bigquery", "${dataset}", "${project}") + "\n"
    return files


if __name__ == "__main__":
    for p in write():
        print(p.relative_to(TERRAFORM_DIR.parent), file=sys.stderr)
