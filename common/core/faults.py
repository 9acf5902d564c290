"""A test-only fault hook: `AIRCAST_KILL_AT=<point>` makes the process kill itself (SIGKILL,
as an out-of-memory kill or a Cloud Run timeout would) when it reaches that point.

Points (each a `checkpoint("...")` call): `run:started` (start row written, before the
job's writes), `ingest:observations-written` and `predict:forecasts-written` (between a
job's writes), `train:version-written` (a version's files saved, the production pointer
not yet moved), `store:cas` (a local compare-and-swap after the object is replaced and
before its generation is), `run:finishing` (the job's writes done, before its outcome
row). Unset, which is always the case outside tests/runtime/test_fault_injection.py and
bench/soak.py, a checkpoint is one environment lookup. Not a setting: nothing deployed
should ever set it.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "AIRCAST_KILL_AT"


def checkpoint(point: str) -> None:
    """Die here, at once and without cleanup, when AIRCAST_KILL_AT names `point`."""
    if os.environ.get(KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)
