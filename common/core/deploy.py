"""Per-function facts that the code and Terraform must agree on, in one place.

`TIMEOUT_SECONDS` is each function's request timeout on Cloud Run: Terraform reads it from
the generated terraform/functions.json (`make generate`), and a run records
`started_at + timeout` as its deadline, after which `run_status` reports a run that never
finished as `lost` (killed by the timeout, out of memory, or a crash).
"""

from __future__ import annotations

TIMEOUT_SECONDS: dict[str, int] = {
    "ingest": 900,
    "train": 1800,
    "predict": 900,
    "monitor": 300,
    "api": 60,
}
