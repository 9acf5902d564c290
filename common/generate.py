"""Write Terraform's generated inputs from common's single sources of truth.

`python -m common.generate` (or `make generate`) rewrites terraform/schemas/ (tables and
views from common.schema) and terraform/schedules.json (from common.schedules); a test
fails when the committed files drift from the code.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from common.schedules import terraform_schedules
from common.schema import terraform_files

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "terraform"


def generated_files() -> dict[str, str]:
    """Relative path under terraform/ -> content."""
    files = {f"schemas/{name}": text for name, text in terraform_files().items()}
    files["schedules.json"] = json.dumps(terraform_schedules(), indent=2) + "\n"
    return files


def write(root: Path = TERRAFORM_DIR) -> list[Path]:
    shutil.rmtree(root / "schemas", ignore_errors=True)
    written = []
    for rel, text in generated_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write():
        print(p.relative_to(TERRAFORM_DIR.parent), file=sys.stderr)
