"""Retention: the schema's partition expirations reach BigQuery through ensure_schema."""

from __future__ import annotations

import json

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from common.core.config import Settings
from common.core.schema import OBSERVATIONS_RETENTION_DAYS, TABLES, TRAIN_WINDOW_MAX_DAYS
from common.warehouse.bigquery_warehouse import BigQueryWarehouse
from tests.warehouse.test_warehouse_contract import CountingSession


def test_raw_observations_outlive_the_longest_training_window():
    assert TABLES["observations_raw"].retention_days == OBSERVATIONS_RETENTION_DAYS
    assert OBSERVATIONS_RETENTION_DAYS > TRAIN_WINDOW_MAX_DAYS
    assert Settings.model_fields["train_window_days"].metadata[-1].le == TRAIN_WINDOW_MAX_DAYS
    for name in ("rejected_rows", "forecasts", "runs"):
        assert 0 < TABLES[name].retention_days < OBSERVATIONS_RETENTION_DAYS  # type: ignore[operator]
    assert TABLES["locations"].retention_days is None  # the places are never dropped


def _client(settings: Settings, session: CountingSession) -> bigquery.Client:
    return bigquery.Client(
        project=settings.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=settings.bigquery_endpoint),
        _http=session,
    )


def _sent_expirations(bodies: list[str]) -> dict[str, str]:
    """tableId (or "patch" for an update) -> timePartitioning.expirationMs of each body sent."""
    out = {}
    for body in bodies:
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        tp = doc.get("timePartitioning") if isinstance(doc, dict) else None
        if tp and "expirationMs" in tp:
            out[doc.get("tableReference", {}).get("tableId", "patch")] = tp["expirationMs"]
    return out


@pytest.mark.emulator
def test_ensure_schema_sets_and_updates_partition_expiration(gcp_settings: Settings):
    session = CountingSession()
    client = _client(gcp_settings, session)
    wh = BigQueryWarehouse(gcp_settings, client=client)
    wh.ensure_schema()
    wanted = {t.name: str(t.expiration_ms) for t in TABLES.values() if t.expiration_ms is not None}
    assert _sent_expirations(session.bodies) == wanted
    for name, ms in wanted.items():  # bqemulator keeps what it was sent
        table = client.get_table(f"{wh.project}.{wh.dataset}.{name}")
        assert table.time_partitioning.expiration_ms == int(ms)

    # a table created before retention existed gets it on the next ensure_schema
    ref = f"{wh.project}.{wh.dataset}.rejected_rows"
    old = client.get_table(ref)
    old.time_partitioning = bigquery.TimePartitioning(field="rejected_at")
    client.update_table(old, ["time_partitioning"])
    session.bodies.clear()
    wh.ensure_schema()
    patches = [b for b in session.bodies if "tableReference" not in b and "expirationMs" in b]
    assert len(patches) == 1 and _sent_expirations(patches) == {"patch": wanted["rejected_rows"]}
    assert client.get_table(ref).time_partitioning.expiration_ms == int(wanted["rejected_rows"])
