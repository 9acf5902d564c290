"""Seconds spent per stage of a predict run, returned by each step and summed by its caller."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Seconds per stage (`read_s`, `write_s`, ...), summed over targets, shards and batches:
    each step returns its own and the caller merges them, so no step writes into another's."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] = round(self.seconds.get(key, 0) + seconds, 4)

    def merge(self, other: Timings | dict[str, float]) -> None:
        """Add another step's seconds, stage by stage."""
        for key, seconds in (other.seconds if isinstance(other, Timings) else other).items():
            self.add(key, seconds)

    @contextmanager
    def stage(self, key: str) -> Iterator[None]:
        """Time the block and add it to `key` (only when it completes: a failed run answers
        no timings)."""
        t = time.perf_counter()
        yield
        self.add(key, time.perf_counter() - t)
