"""Cloud Run function `ingest`: pull observations from a public API into the warehouse.

POST {as_of?, start?, end?, locations?, source?, path?} -> {run_id, status, counts, ...}
"""

import functions_framework
from flask import Request

from common.ingest.job import IngestAnswer, IngestRequest, run_ingest
from common.runtime.handler import handle


@functions_framework.http
def ingest(request: Request) -> tuple[dict, int]:
    return handle(request, IngestRequest, run_ingest, IngestAnswer)
