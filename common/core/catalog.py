"""The one list of ingest sources and what the rest of the code needs to know about each.

It lives in core (layer 0), not beside the adapters in `common.sources` (layer 1), because
configuration needs the names too (`Settings.source` may only name a source) and core may
not import upward. It is its own module rather than part of `schema`: schema describes what
is stored, this describes where data comes from, and the two change for different reasons.

Only data lives here. `common.sources` maps each name to its adapter class, importing the
adapter's module only when that source is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceInfo:
    name: str
    # Days per run of `aircast backfill` unless AIRCAST_BACKFILL_CHUNK_DAYS says otherwise.
    backfill_chunk_days: int
    # Can be a deployed function's source. csv reads files from the machine it runs on and
    # synthetic exists for offline use, so neither is offered on Google Cloud.
    cloud: bool
    # The Settings field holding the source's token (a Secret Manager secret on Google
    # Cloud), or None when the API is open.
    token_setting: str | None = None
    # The adapter reads a file or folder (`path`) instead of calling an API.
    reads_files: bool = False
    # What its pollutant values are: "measurement" (monitors) or "model" (a model's output,
    # e.g. CAMS via Open-Meteo, or simulated). Stored on every observation it lands.
    provenance: str = "measurement"


# Open-Meteo bills a request by its days beyond 14 (so 14 costs one call per place);
# data.gov.sg is fetched a day per request anyway; OpenAQ's /hours pages hold 1,000 hours,
# so 41 days (985 hours) cost one request per sensor; local sources only trade memory for
# fewer runs (see docs/benchmarks.md). AQICN has no history.
SOURCES: dict[str, SourceInfo] = {
    s.name: s
    for s in (
        SourceInfo("open-meteo", backfill_chunk_days=14, cloud=True, provenance="model"),
        SourceInfo("data-gov-sg", backfill_chunk_days=7, cloud=True),
        SourceInfo("aqicn", backfill_chunk_days=1, cloud=True, token_setting="aqicn_token"),
        SourceInfo("csv", backfill_chunk_days=92, cloud=False, reads_files=True),
        SourceInfo("synthetic", backfill_chunk_days=31, cloud=False, provenance="model"),
        SourceInfo("openaq", backfill_chunk_days=41, cloud=True, token_setting="openaq_api_key"),
    )
}
SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)
CLOUD_SOURCES: tuple[str, ...] = tuple(n for n, s in SOURCES.items() if s.cloud)
PROVENANCES: tuple[str, ...] = ("measurement", "model")


def provenance_of(source: str | None) -> str | None:
    """measurement or model: what a source's pollutant values are (None: unknown source)."""
    info = SOURCES.get(source or "")
    return info.provenance if info else None


def check_source(name: str) -> str:
    """`name` if it is a known source; the message every validator of a source answers."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; one of {', '.join(SOURCE_NAMES)}")
    return name


# The source used when AIRCAST_SOURCE is unset, per backend: live data on Google Cloud,
# the offline generator locally.
DEFAULT_SOURCE: dict[str, str] = {"gcp": "open-meteo", "local": "synthetic"}
