"""Cloud Run function `predict`: batch forecasts for every active location + serving snapshot.

POST {as_of?} -> {run_id, status, model_version, issued_at, counts, skipped, targets}
(409 when no model is in production yet).
"""

import functions_framework
from flask import Request

from common.predict.answer import PredictAnswer
from common.predict.job import PredictRequest, run_predict
from common.runtime.handler import handle


@functions_framework.http
def predict(request: Request) -> tuple[dict, int]:
    return handle(request, PredictRequest, run_predict, PredictAnswer)
