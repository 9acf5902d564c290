"""Run a deployed Cloud Scheduler job now (`aircast run-job`).

Running the job rather than calling the function directly sends exactly what the schedule
sends: the job's body, its OIDC token, its retries and deadline.
"""

from __future__ import annotations

from typing import Any

from common.core.errors import BadGateway, NotFound
from common.scheduling.schedules import SCHEDULES


def job_name(name: str) -> str:
    """A job name, or a function name standing for its scheduled job (ingest -> ...)."""
    by_function = {s.function: s.name for s in SCHEDULES}
    return by_function.get(name, name)


def run_job(project: str, region: str, name: str, endpoint: str | None = None) -> dict[str, Any]:
    """Ask Cloud Scheduler to run the job now; answer the job's name, state and schedule.

    `endpoint` points the client at another API host (tests serve the REST API on loopback,
    with anonymous credentials); by default it is Google's, with the caller's credentials.
    """
    from google.api_core import exceptions as gexc
    from google.cloud import scheduler_v1

    kwargs: dict[str, Any] = {}
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        kwargs = {
            "transport": "rest",
            "credentials": AnonymousCredentials(),
            "client_options": ClientOptions(api_endpoint=endpoint),
        }
    client = scheduler_v1.CloudSchedulerClient(**kwargs)
    path = client.job_path(project, region, job_name(name))
    try:
        job = client.run_job(name=path)
    except gexc.NotFound:
        known = ", ".join(s.name for s in SCHEDULES)
        raise NotFound(f"no job {path} (known: {known}); was terraform applied?") from None
    except gexc.GoogleAPICallError as exc:
        raise BadGateway(f"Cloud Scheduler refused to run {path}: {exc.message}") from None
    return {
        "job": job.name,
        "state": scheduler_v1.Job.State(job.state).name,
        "schedule": job.schedule,
        "time_zone": job.time_zone,
        "target": job.http_target.uri,
    }
