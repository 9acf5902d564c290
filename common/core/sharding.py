"""Which predict shard a location belongs to: one stable rule for predict, the api and the
schedules.

A shard is a hash of the location id, not a range or a table column: predict shard K of N
and the api find a location's shard from its id alone, with no coordinator and no lookup
table to keep in step. sha256 (not Python's `hash`, which is salted per process) keeps the
answer the same across processes, machines and versions.
"""

from __future__ import annotations

import hashlib

from common.core.errors import BadRequest

MAX_SHARDS = 256


def shard_of(location_id: str, shards: int) -> int:
    """The shard (0 .. shards-1) that serves `location_id` when predict runs as `shards`."""
    if shards <= 1:
        return 0
    digest = hashlib.sha256(location_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shards_to_run(
    shard: int | None, shards: int | None, default_shards: int
) -> tuple[list[int], int]:
    """(the shards one predict request runs, out of how many). Neither named: every shard
    of the deployment, one after another (a manual or local run); `shards` alone: every
    shard of that count, one after another (what its schema allows: `shards` does not need
    `shard`); `shard` alone: that shard of the deployment's count. A 400 names the field
    that is wrong."""
    n = default_shards if shards is None else shards
    if not 1 <= n <= MAX_SHARDS:
        raise BadRequest(f"shards: must be 1 .. {MAX_SHARDS}", field="shards")
    if shard is None:
        return list(range(n)), n
    if not 0 <= shard < n:
        raise BadRequest(f"shard: must be 0 .. {n - 1} for {n} shards", field="shard")
    return [shard], n
