"""Cloud Run function `ingest`: pull observations from a public API into the warehouse.

POST {as_of?, start?, end?, locations?, source?, path?} -> {run_id, status, counts, ...}
"""

import functions_framework
from flask import Request

from common.handlers import handle
from common.jobs.ingest import IngestRequest, run_ingest


@functions_framework.http
def ingest(request: Request) -> tuple[dict, int]:
    return handle(request, IngestRequest, run_ingest)
