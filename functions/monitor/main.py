"""Cloud Run function `monitor`: the pipeline's health at as_of, stored for the api.

POST {as_of?} -> {run_id, status, health, conditions, stored}
(`health` is ok / warn / alert; each condition is also logged for the alert policies).
"""

import functions_framework
from flask import Request

from common.monitoring.job import MonitorAnswer, MonitorRequest, run_monitor
from common.runtime.handler import handle


@functions_framework.http
def monitor(request: Request) -> tuple[dict, int]:
    return handle(request, MonitorRequest, run_monitor, MonitorAnswer)
