"""A function for scheduler tests: fails with 500 on the first call for each as_of.

Calls are appended to the file named by FLAKY_LOG, so tests can see every attempt.
"""

import json
import os

import functions_framework


@functions_framework.http
def flaky(request):
    body = request.get_json(silent=True) or {}
    log = os.environ["FLAKY_LOG"]
    seen = []
    if os.path.exists(log):
        with open(log) as fh:
            seen = [json.loads(line) for line in fh]
    with open(log, "a") as fh:
        fh.write(json.dumps(body) + "\n")
    if body.get("bad"):
        return {"error": "bad request", "field": "bad"}, 400
    if not any(b.get("as_of") == body.get("as_of") for b in seen):
        return {"status": "failed", "error": "transient"}, 500
    return {"status": "success", "run_id": f"flaky-{len(seen)}"}, 200
