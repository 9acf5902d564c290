"""Publishing a snapshot (or a shard's part, or the interval offsets) so it only moves forward."""

from __future__ import annotations

from typing import Any

import pandas as pd

from common.core.errors import Conflict
from common.core.timeutil import iso
from common.forecasting.snapshot import SNAPSHOT_KEY, issued_at_of
from common.predict.snapshot import encode_snapshot
from common.runtime.services import Services
from common.storage.base import NotFound, PreconditionFailed


def publish(
    services: Services, snapshot: dict[str, Any], key: str = SNAPSHOT_KEY, attempts: int = 3
) -> dict[str, Any]:
    """Write the snapshot (or one shard's part, or the interval offsets) at `key` unless a
    newer issue time is already served there.

    Compare-and-swap on the generation read, so two predict runs racing cannot let the
    older issue time land last; the loser re-reads and decides again.
    """
    store = services.store
    body = encode_snapshot(snapshot)
    issued = pd.Timestamp(snapshot["issued_at"])
    for _ in range(attempts):
        try:
            data, generation = store.get_with_generation(key)
            current = pd.Timestamp(issued_at_of(data))
        except NotFound:
            current, generation = None, 0
        except (ValueError, KeyError, TypeError):  # unreadable: replace it
            current, generation = None, store.generation(key)
        if current is not None and current > issued:
            return {"written": False, "reason": f"a newer snapshot ({iso(current)}) is served"}
        try:
            store.put_if_generation(key, body, generation, "application/json")
        except PreconditionFailed:
            continue
        return {"written": True, "key": key, "bytes": len(body)}
    raise Conflict("the serving snapshot kept changing under this run; retry", field="snapshot")
