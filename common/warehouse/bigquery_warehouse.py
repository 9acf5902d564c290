"""BigQuery adapter: google-cloud-bigquery for schema, appends and reads.

Reads run through this adapter's own client (`query_and_wait`, then `to_arrow`). A result
that fits the query's own response (up to PAGE_ROWS rows) is read from it; a larger one
comes through the BigQuery Storage Read API (Arrow record batches over gRPC) with this
adapter's read client, never as paged REST JSON. The clients
(`common.warehouse.bigquery_clients`) honour the endpoint overrides (the emulator's REST
and gRPC ports), so the tests run the path BigQuery takes.

A bulk append (more than STREAM_ROWS rows) is one load job of one Parquet file: atomic (all
rows land or none), free, and a constant number of API requests whatever the row count (a
10,000-location predict used to be ~480 insertAll requests). The upload is resumable
(`size=None`): the multipart path does not work on the emulator, and resumable is what
large files take anyway. Smaller appends go through the Storage Write API, which has no
per-table job quota. Both are in `common.warehouse.bigquery_write`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa
from google.api_core import exceptions as gexc
from google.cloud import bigquery, bigquery_storage_v1

from common.core.config import Settings
from common.core.schema import TABLES, Table
from common.core.views import VIEWS
from common.warehouse.base import Warehouse, WarehouseError
from common.warehouse.bigquery_clients import make_client, make_read_client, make_write_client
from common.warehouse.bigquery_write import (
    STREAM_MAX_BYTES,
    STREAM_ROWS,
    load_job_id,
    load_parquet,
    parquet_bytes,
    proto_rows,
    stream_rows,
)

NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}

# Rows a query's own response may carry (BigQuery also caps it at 10 MB): a result this
# small is read from that response; a larger one through the Storage Read API.
PAGE_ROWS = 10_000


class BigQueryWarehouse(Warehouse):
    dialect = "bigquery"

    def __init__(
        self,
        settings: Settings,
        client: bigquery.Client | None = None,
        read_client: bigquery_storage_v1.BigQueryReadClient | None = None,
        write_client: bigquery_storage_v1.BigQueryWriteClient | None = None,
    ) -> None:
        super().__init__(settings)
        if not settings.project:
            raise WarehouseError("GOOGLE_CLOUD_PROJECT is required for BigQuery")
        self.project: str = settings.project
        self.client = client or make_client(settings)
        self._read_client = read_client
        self._write_client = write_client

    @property
    def read_client(self) -> bigquery_storage_v1.BigQueryReadClient:
        """The Storage Read API client, made on first use (it connects on its first call,
        which a result complete in its first page never makes)."""
        if self._read_client is None:
            self._read_client = make_read_client(self.settings)
        return self._read_client

    @property
    def write_client(self) -> bigquery_storage_v1.BigQueryWriteClient:
        """The Storage Write API client, made on first use."""
        if self._write_client is None:
            self._write_client = make_write_client(self.settings)
        return self._write_client

    def _project(self) -> str | None:
        return self.project

    def _ref(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    # -- schema -------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        ds = bigquery.Dataset(f"{self.project}.{self.dataset}")
        ds.location = self.settings.bq_location
        self.client.create_dataset(ds, exists_ok=True)
        for table in TABLES.values():
            self._ensure_table(table)
        for view in VIEWS.values():
            self._ensure_view(view.name, self.render(view.sql), view.description)

    def _ensure_table(self, table: Table) -> None:
        wanted = [
            bigquery.SchemaField(c.name, c.type, mode=c.mode, description=c.description)
            for c in table.columns
        ]
        obj = bigquery.Table(self._ref(table.name), schema=wanted)
        obj.description = table.description
        if table.partition_by:
            obj.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY,
                field=table.partition_by,
                expiration_ms=table.expiration_ms,
            )
        if table.cluster_by:
            obj.clustering_fields = list(table.cluster_by)
        existing = self.client.create_table(obj, exists_ok=True)
        self._ensure_retention(existing, table)
        have = {f.name for f in existing.schema}
        missing = [f for f in wanted if f.name not in have]
        relax = {f.name for f in wanted if f.mode == "NULLABLE"}
        relaxed = [
            bigquery.SchemaField(f.name, f.field_type, "NULLABLE", f.description)
            if f.name in relax and f.mode == "REQUIRED"
            else f
            for f in existing.schema
        ]
        if missing or relaxed != list(existing.schema):
            # additive migration: BigQuery allows appending NULLABLE columns and relaxing
            # REQUIRED ones to NULLABLE
            existing.schema = [
                *relaxed,
                *(
                    bigquery.SchemaField(f.name, f.field_type, "NULLABLE", f.description)
                    for f in missing
                ),
            ]
            self.client.update_table(existing, ["schema"])

    def _ensure_retention(self, existing: bigquery.Table, table: Table) -> None:
        """A table created before its retention was set (or changed) gets the schema's."""
        tp = existing.time_partitioning
        if tp is None or tp.expiration_ms == table.expiration_ms:
            return
        tp.expiration_ms = table.expiration_ms
        existing.time_partitioning = tp
        self.client.update_table(existing, ["time_partitioning"])

    def _ensure_view(self, name: str, sql: str, description: str) -> None:
        view = bigquery.Table(self._ref(name))
        view.view_query = sql
        view.description = description
        try:
            self.client.create_table(view)
        except gexc.Conflict:
            current = self.client.get_table(self._ref(name))
            if current.view_query != sql:
                current.view_query = sql
                self.client.update_table(current, ["view_query"])

    def relations(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        try:
            items = list(self.client.list_tables(f"{self.project}.{self.dataset}"))
        except gexc.NotFound:
            return out
        for item in items:
            table = self.client.get_table(item.reference)
            out[item.table_id] = [(f.name, _standard_type(f.field_type)) for f in table.schema]
        return out

    # -- data ---------------------------------------------------------------------------
    def _append(self, table: Table, frame: pd.DataFrame) -> int:
        if len(frame) <= STREAM_ROWS:
            rows = proto_rows(table, frame)
            if sum(len(r) for r in rows) <= STREAM_MAX_BYTES:
                return self._stream(table, rows)
        return self._load(table, frame)

    def _stream(self, table: Table, rows: list[bytes]) -> int:
        parent = self.write_client.table_path(self.project, self.dataset, table.name)
        return stream_rows(self.write_client, parent, table, rows)

    def _load(self, table: Table, frame: pd.DataFrame) -> int:
        data = parquet_bytes(table, frame)
        load_parquet(
            self.client, self._ref(table.name), table.name, data, load_job_id(table.name, data)
        )
        return len(frame)  # also when a retried append found the job that loaded them

    def _append_once(self, table: Table, frame: pd.DataFrame, delivery: str) -> int:
        # A load job's id is unique in the project: the delivery's id as the job id makes
        # BigQuery itself refuse a second load of it, concurrent or later.
        data = parquet_bytes(table, frame)
        job_id = f"aircast_delivery_{table.name}_{delivery}"
        loaded = load_parquet(self.client, self._ref(table.name), table.name, data, job_id)
        return len(frame) if loaded else 0  # delivered before (or right now, by a twin run)

    def _query(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        config = bigquery.QueryJobConfig(
            query_parameters=[_param(k, v) for k, v in params.items()], use_legacy_sql=False
        )
        try:
            rows = self.client.query_and_wait(sql, job_config=config, page_size=PAGE_ROWS)
            # The client library reads a result complete in its first page from that page
            # and anything larger from the query's result table over the Storage Read API.
            table = rows.to_arrow(bqstorage_client=self.read_client)
        except (gexc.GoogleAPIError, TimeoutError) as exc:
            raise WarehouseError(f"query failed: {exc}") from None
        # BigQuery's nullable INT64 / BOOL as pandas' nullable types (as pandas-gbq gave them).
        return table.to_pandas(types_mapper=NULLABLE.get)

    def close(self) -> None:
        self.client.close()
        for storage in (self._read_client, self._write_client):
            if storage is not None:
                storage.transport.close()


_TYPES = {bool: "BOOL", int: "INT64", float: "FLOAT64", str: "STRING"}


def _param(name: str, value: Any) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    if isinstance(value, list):
        kinds = {_scalar_type(v) for v in value} or {"STRING"}
        if len(kinds) != 1:
            raise WarehouseError(f"parameter {name!r} mixes types {sorted(kinds)}")
        return bigquery.ArrayQueryParameter(name, kinds.pop(), value)
    return bigquery.ScalarQueryParameter(name, _scalar_type(value), value)


def _scalar_type(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    for py, bq in _TYPES.items():
        if type(value) is py:
            return bq
    if value is None:
        return "STRING"
    raise WarehouseError(f"unsupported parameter type {type(value).__name__}")


def _standard_type(legacy: str) -> str:
    return {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(legacy, legacy)
