"""Publishing a snapshot (or a shard's part, or the interval offsets) so it only moves forward,
and so that serving never degrades without saying so.

- Forward only: an older issue time (a backfill) never replaces a newer one, but a served
  document dated after now (+ the clock skew) is no "newer" one: it is replaced, so such a
  document cannot freeze serving.
- A location the run had to skip keeps its last forecast while that still covers hours
  after the new issue time: carried over with its own (older) issue time and listed under
  `stale`, which the api and dashboard show.
- An empty result (no location forecast, none carried) is never published: the served
  snapshot stays and the answer says why.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from common.core.logs import event, get_logger
from common.core.timeutil import in_future, iso, parse_time
from common.forecasting.snapshot import SNAPSHOT_KEY, issued_at_of
from common.predict.snapshot import RawJSON, encode_snapshot
from common.runtime.services import Services

log = get_logger("predict")


def publish(
    services: Services, snapshot: dict[str, Any], key: str = SNAPSHOT_KEY, attempts: int = 3
) -> dict[str, Any]:
    """Write the snapshot (or one shard's part, or the interval offsets) at `key` unless a
    newer issue time is already served there (see the module docstring).

    The store's `put_if_newer`, as the status writer uses it: compare-and-swap on the
    generation read, so two predict runs racing cannot let the older issue time land last;
    the document is built again on each try from the one it replaces (the carried
    forecasts); an unreadable one is replaced (and logged); losing the race `attempts`
    times is a retryable Contention.
    """
    built: dict[str, int] = {}

    def build(served: bytes | None) -> bytes | None:
        doc, stale, missing = _with_carried(snapshot, served)
        built.clear()
        if "forecasts" in doc and str(doc["forecasts"]).strip() in ("{}", ""):
            return None
        if "forecasts" in doc:
            doc = _with_counts(doc, {"stale": len(stale), "missing": missing})
        body = encode_snapshot(doc)
        built.update(bytes=len(body), stale=len(stale))
        return body

    issued = parse_time(snapshot["issued_at"])
    put = services.store.put_if_newer(key, build, issued, served_issued_at, attempts=attempts)
    if put.replaced is not None:
        event(log, "replaced an unreadable snapshot", logging.WARNING, key=key, error=put.replaced)
    if put.newer is not None:
        return {"written": False, "reason": f"a newer snapshot ({iso(put.newer)}) is served"}
    if put.declined:
        return {
            "written": False,
            "reason": "no location could be forecast and none has a forecast still "
            "covering future hours: the served snapshot is kept",
        }
    answer: dict[str, Any] = {"written": True, "key": key, "bytes": built["bytes"]}
    if built["stale"]:
        answer["stale"] = built["stale"]
    if put.replaced is not None:
        answer["replaced"] = put.replaced
    return answer


def served_issued_at(data: bytes) -> dt.datetime:
    """The issue time of a served document (raises ValueError/KeyError when unreadable).
    One dated after now (+ the clock skew) is no newer snapshot: unreadable, so replaced."""
    issued = parse_time(issued_at_of(data))
    if in_future(issued):
        raise ValueError(f"a snapshot dated after now ({iso(issued)})")
    return issued


def _with_counts(doc: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """`doc` with `counts` placed before its large maps (after `shards`), within the first
    kilobyte or so: what the monitor reads of a part without parsing its megabytes."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "locations":
            out["counts"] = counts
        out[key] = value
    out.setdefault("counts", counts)
    return out


def _with_carried(
    snapshot: dict[str, Any], served: bytes | None
) -> tuple[dict[str, Any], list[dict[str, str]], int]:
    """`snapshot` with the served forecasts of the locations it skipped carried over,
    where they still cover an hour after its issue time, and those listed under `stale`;
    and how many skipped locations have no forecast served (missing)."""
    skipped = [s["location_id"] for s in snapshot.get("skipped") or []]
    if "forecasts" not in snapshot or not skipped:
        return snapshot, [], 0
    forecasts = json.loads(snapshot["forecasts"])
    missing = sum(1 for location_id in skipped if location_id not in forecasts)
    if served is None:
        return snapshot, [], missing
    try:
        old = json.loads(served)
        old_forecasts, old_obs = old.get("forecasts") or {}, old.get("observations") or {}
    except (ValueError, AttributeError):
        return snapshot, [], missing
    issued = parse_time(snapshot["issued_at"])
    observations = json.loads(snapshot.get("observations") or "{}")
    stale = []
    for location_id in skipped:
        fc = old_forecasts.get(location_id)
        if location_id in forecasts or not isinstance(fc, dict):
            continue
        try:
            then = parse_time(fc["issued_at"])
            covers = then + dt.timedelta(hours=len(fc["yhat"]))
        except (KeyError, TypeError, ValueError):
            continue
        if covers <= issued:  # every hour it forecast has passed: nothing left to serve
            continue
        forecasts[location_id] = fc
        if location_id in old_obs and location_id not in observations:
            observations[location_id] = old_obs[location_id]
        stale.append({"location_id": location_id, "issued_at": iso(then)})
    if not stale:
        return snapshot, [], missing
    doc = dict(snapshot)
    doc["forecasts"] = RawJSON(json.dumps(forecasts, separators=(",", ":")))
    doc["observations"] = RawJSON(json.dumps(observations, separators=(",", ":")))
    doc["stale"] = stale
    return doc, stale, sum(1 for location_id in skipped if location_id not in forecasts)
