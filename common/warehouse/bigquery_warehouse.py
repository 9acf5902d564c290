"""BigQuery adapter: google-cloud-bigquery for schema, appends and reads.

Reads run through this adapter's own client (`query_and_wait`, then `to_arrow`). A result
that fits the query's own response (up to PAGE_ROWS rows) is read from it; a larger one
comes through the BigQuery Storage Read API (Arrow record batches over gRPC) with this
adapter's read client, never as paged REST JSON. Both clients honour the endpoint
overrides (the emulator's REST and gRPC ports), so the tests run the path BigQuery takes.

A bulk append (more than STREAM_ROWS rows) is one load job of one Parquet file: atomic (all
rows land or none), free, and a constant number of API requests whatever the row count (a
10,000-location predict used to be ~480 insertAll requests). The upload is resumable
(`size=None`): the multipart path does not work on the emulator, and resumable is what
large files take anyway. The job id is derived from the file's bytes, so a retried append
of the same rows finds the job that loaded them instead of loading them twice.

Load jobs count against a quota of 1,500 per table per day, so the few rows every run
appends (its `runs` start and outcome rows, a predict shard's interval offsets) go through
the Storage Write API instead, which has no per-table job quota: a COMMITTED write stream
of their own, one AppendRows at offset 0, then FinalizeWriteStream. A retried AppendRows
(the answer was lost) is answered ALREADY_EXISTS if the first one landed, so the rows are
written exactly once. Rows are sent as protocol buffers described by the table's schema
(the Storage Write API's generally available format).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import time
from typing import Any

import grpc
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, bigquery_storage_v1
from google.cloud.bigquery_storage_v1 import types as storage_types
from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
    BigQueryReadGrpcTransport,
)
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
    BigQueryWriteGrpcTransport,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from common.core.config import Settings
from common.core.schema import TABLES, Table
from common.core.views import VIEWS
from common.warehouse.base import Warehouse, WarehouseError

AnyJob = (
    bigquery.LoadJob
    | bigquery.CopyJob
    | bigquery.ExtractJob
    | bigquery.QueryJob
    | bigquery.UnknownJob
)

# Parquet types for the schema's BigQuery types (timestamps in microseconds, UTC).
ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}
LOAD_TIMEOUT_SECONDS = 600.0


def make_client(settings: Settings) -> bigquery.Client:
    """A BigQuery client; an endpoint override (emulator) uses anonymous credentials."""
    if settings.bigquery_endpoint:
        return bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=settings.bigquery_endpoint),
            location=settings.bq_location,
        )
    return bigquery.Client(project=settings.project, location=settings.bq_location)


def storage_channel(endpoint: str) -> grpc.Channel:
    """An insecure channel to an emulator's Storage API port, with no message size limit
    (as the client library's own channels: gRPC's default 4 MB is less than a ReadRows
    batch of wide rows)."""
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    return grpc.insecure_channel(endpoint, options=unlimited)


def make_read_client(
    settings: Settings, channel: grpc.Channel | None = None
) -> bigquery_storage_v1.BigQueryReadClient:
    """A Storage Read API client. With an endpoint override (the emulator's gRPC port) it
    talks over an insecure channel, the way the client library takes a custom channel: a
    transport built on that channel, the endpoint in client_options."""
    endpoint = settings.bigquery_storage_endpoint
    if not endpoint:
        return bigquery_storage_v1.BigQueryReadClient()
    transport = BigQueryReadGrpcTransport(channel=channel or storage_channel(endpoint))
    return bigquery_storage_v1.BigQueryReadClient(
        transport=transport, client_options=ClientOptions(api_endpoint=endpoint)
    )


def make_write_client(
    settings: Settings, channel: grpc.Channel | None = None
) -> bigquery_storage_v1.BigQueryWriteClient:
    """A Storage Write API client, on the endpoint override's insecure channel if one is set."""
    endpoint = settings.bigquery_storage_endpoint
    if not endpoint:
        return bigquery_storage_v1.BigQueryWriteClient()
    transport = BigQueryWriteGrpcTransport(channel=channel or storage_channel(endpoint))
    return bigquery_storage_v1.BigQueryWriteClient(
        transport=transport, client_options=ClientOptions(api_endpoint=endpoint)
    )


NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}

# Appends of up to this many rows go through the Storage Write API, larger ones are one
# load job. A run's own rows are a handful; forecasts and observations are thousands.
STREAM_ROWS = 1_000
STREAM_MAX_BYTES = 8 * 1024 * 1024  # an AppendRows request may carry 10 MB
APPEND_ATTEMPTS = 4
APPEND_TIMEOUT_SECONDS = 60.0
_RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Aborted,
)
_ALREADY_EXISTS = 6  # google.rpc.Code: the offset was written by an earlier attempt


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
        """Append through the Storage Write API: a committed stream of these rows alone,
        written at offset 0, so a retry after a lost answer cannot write them twice."""
        client = self.write_client
        try:
            stream = client.create_write_stream(
                parent=client.table_path(self.project, self.dataset, table.name),
                write_stream=storage_types.WriteStream(
                    type_=storage_types.WriteStream.Type.COMMITTED
                ),
            )
            request = storage_types.AppendRowsRequest(
                write_stream=stream.name,
                offset=0,
                proto_rows=storage_types.AppendRowsRequest.ProtoData(
                    writer_schema=storage_types.ProtoSchema(proto_descriptor=row_descriptor(table)),
                    rows=storage_types.ProtoRows(serialized_rows=rows),
                ),
            )
            # The stream's name routes the call (the client library's writer sends the same).
            metadata = (("x-goog-request-params", f"write_stream={stream.name}"),)
            response = None
            for attempt in range(1, APPEND_ATTEMPTS + 1):
                # Retried here, not by the library: its default retry of AppendRows calls
                # again with the request iterator it already drained, sending no rows.
                try:
                    answers = client.append_rows(
                        iter([request]),
                        retry=None,
                        timeout=APPEND_TIMEOUT_SECONDS,
                        metadata=metadata,
                    )
                    response = next(iter(answers), None)
                except _RETRYABLE:
                    if attempt == APPEND_ATTEMPTS:
                        raise
                    time.sleep(0.25 * attempt)
                    continue
                if response is not None:
                    break
            if response is None:
                raise WarehouseError(f"append to {table.name}: no answer from AppendRows")
            code = response.error.code if "error" in response else 0
            if code not in (0, _ALREADY_EXISTS):
                raise WarehouseError(
                    f"append to {table.name} rejected: {response.error.message} "
                    f"{list(response.row_errors)[:3]}"
                )
            client.finalize_write_stream(name=stream.name)
        except gexc.GoogleAPIError as exc:
            raise WarehouseError(f"append to {table.name} failed: {exc}") from None
        return len(rows)

    def _load(self, table: Table, frame: pd.DataFrame) -> int:
        data = parquet_bytes(table, frame)
        job_id = load_job_id(table.name, data)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        try:
            job: AnyJob  # get_job answers whatever kind the id names (here: this load)
            try:
                job = self.client.load_table_from_file(
                    io.BytesIO(data), self._ref(table.name), job_id=job_id,
                    job_config=config, size=None,
                )  # fmt: skip
            except gexc.Conflict:  # this very file was loaded before: a retried append
                job = self.client.get_job(job_id)
            job.result(timeout=LOAD_TIMEOUT_SECONDS)
        except (gexc.GoogleAPIError, TimeoutError) as exc:
            raise WarehouseError(f"append to {table.name} failed: {exc}") from None
        if job.errors:
            raise WarehouseError(f"append to {table.name} rejected: {job.errors[:3]}")
        return len(frame)

    def _append_once(self, table: Table, frame: pd.DataFrame, delivery: str) -> int:
        # A load job's id is unique in the project: the delivery's id as the job id makes
        # BigQuery itself refuse a second load of it, concurrent or later.
        data = parquet_bytes(table, frame)
        job_id = f"aircast_delivery_{table.name}_{delivery}"
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        written = len(frame)
        try:
            job: AnyJob
            try:
                job = self.client.load_table_from_file(
                    io.BytesIO(data), self._ref(table.name), job_id=job_id,
                    job_config=config, size=None,
                )  # fmt: skip
            except gexc.Conflict:  # delivered before (or right now, by a twin run)
                job, written = self.client.get_job(job_id), 0
            job.result(timeout=LOAD_TIMEOUT_SECONDS)
        except (gexc.GoogleAPIError, TimeoutError) as exc:
            raise WarehouseError(f"append to {table.name} failed: {exc}") from None
        if job.errors:
            raise WarehouseError(f"append to {table.name} rejected: {job.errors[:3]}")
        return written

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


def parquet_bytes(table: Table, frame: pd.DataFrame) -> bytes:
    """The conformed frame as one Parquet file typed by the table's schema."""
    schema = pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in table.columns]
    )
    arrow = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(arrow, buf, compression="snappy")
    return buf.getvalue()


_PROTO_TYPES = {
    "STRING": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "INT64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "FLOAT64": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    "BOOL": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "TIMESTAMP": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,  # microseconds since epoch
}


@functools.cache
def row_descriptor(table: Table) -> descriptor_pb2.DescriptorProto:
    """The protocol buffer message of one row of `table`: a proto2 field per column, in
    order and named as the column, optional so that an absent field is NULL."""
    message = descriptor_pb2.DescriptorProto(name=f"{table.name}_row")
    for number, column in enumerate(table.columns, start=1):
        message.field.add(
            name=column.name,
            number=number,
            type=_PROTO_TYPES[column.type],
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    return message


@functools.cache
def _row_class(table: Table) -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(
        descriptor_pb2.FileDescriptorProto(
            name=f"{table.name}_row.proto", syntax="proto2", message_type=[row_descriptor(table)]
        )
    )
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{table.name}_row"))


def proto_rows(table: Table, frame: pd.DataFrame) -> list[bytes]:
    """The conformed frame's rows serialised as `row_descriptor(table)` messages."""
    cls = _row_class(table)
    columns = {}
    for column in table.columns:
        values = frame[column.name]
        if column.type == "TIMESTAMP":
            micros = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]").array.asi8
            columns[column.name] = [
                None if missing else int(v)
                for v, missing in zip(micros, values.isna(), strict=True)
            ]
        else:
            columns[column.name] = [None if _missing(v) else _plain(v) for v in values]
    out = []
    for values in zip(*columns.values(), strict=True):
        row = cls(**{k: v for k, v in zip(columns, values, strict=True) if v is not None})
        out.append(row.SerializeToString())
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def load_job_id(table: str, data: bytes) -> str:
    """Deterministic job id: the same rows re-sent map to the job that already loaded them."""
    return f"aircast_append_{table}_{hashlib.sha256(data).hexdigest()[:40]}"


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
