"""Cloud Run function `api`: forecast lookups from the serving snapshot, and a dashboard.

GET /health, /v1/locations, /v1/forecasts[/<id>], /v1/models/current, /v1/metrics,
/openapi.json, / ; POST /v1/predict. Imports stay light for a fast cold start: no pandas,
xgboost or BigQuery client until the first POST /v1/predict needs the model.
"""

import functools

import flask
import functions_framework
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from common.core.config import get_settings
from common.core.logs import configure_logging
from common.runtime.services import get_store
from common.serving.api import Api


@functools.cache
def _api() -> Api:
    """Built on the first request (settings are read then, as for the other functions)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return Api(settings, get_store())


@functions_framework.http
def api(request: flask.Request) -> Response:
    return _api()(request)


@functions_framework.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[dict[str, str], int]:
    """Paths the router itself refuses (e.g. a control character in a location id) answer
    JSON like every other error of the api, not Werkzeug's HTML page."""
    return {"error": f"{exc.name}: the path or method is not served by this api"}, exc.code or 500
