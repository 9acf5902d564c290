"""Cloud Run function `train`: retrain, evaluate against baselines, gate, promote.

POST {as_of?, window_days?, max_rows?} -> {run_id, status, version, promoted, gate, metrics}
(status "rejected" with HTTP 200 when the gate keeps the current production model).
"""

import functions_framework
from flask import Request

from common.runtime.handler import handle
from common.train.job import TrainAnswer, TrainRequest, run_train


@functions_framework.http
def train(request: Request) -> tuple[dict, int]:
    return handle(request, TrainRequest, run_train, TrainAnswer)
