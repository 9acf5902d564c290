"""Appending to BigQuery: small appends through the Storage Write API, bulk ones as one
load job of a Parquet file (see `common.warehouse.bigquery_warehouse` for which and why).

Load jobs count against a quota of 1,500 per table per day, so the few rows every run
appends (its `runs` start and outcome rows, a predict shard's interval offsets) go through
the Storage Write API instead, which has no per-table job quota: a COMMITTED write stream
of their own, one AppendRows at offset 0, then FinalizeWriteStream. A retried AppendRows
(the answer was lost) is answered ALREADY_EXISTS if the first one landed, so the rows are
written exactly once. Rows are sent as protocol buffers described by the table's schema
(the Storage Write API's generally available format).

A load job's id is derived from the file's bytes (or the delivery's id), so a retried
append of the same rows finds the job that loaded them instead of loading them twice.
"""

from __future__ import annotations

import functools
import hashlib
import io
import time
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery, bigquery_storage_v1
from google.cloud.bigquery_storage_v1 import types as storage_types
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from common.core.schema import Table
from common.warehouse.base import WarehouseError

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


def stream_rows(
    client: bigquery_storage_v1.BigQueryWriteClient, parent: str, table: Table, rows: list[bytes]
) -> int:
    """Append through the Storage Write API to the table at `parent` (its table path): a
    committed stream of these rows alone, written at offset 0, so a retry after a lost
    answer cannot write them twice."""
    try:
        stream = client.create_write_stream(
            parent=parent,
            write_stream=storage_types.WriteStream(type_=storage_types.WriteStream.Type.COMMITTED),
        )
        request = storage_types.AppendRowsRequest(
            write_stream=stream.name,
            offset=0,
            proto_rows=storage_types.AppendRowsRequest.ProtoData(
                writer_schema=storage_types.ProtoSchema(proto_descriptor=row_descriptor(table)),
                rows=storage_types.ProtoRows(serialized_rows=rows),
            ),
        )
        response = _append_rows(client, stream.name, request)
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


def _append_rows(
    client: bigquery_storage_v1.BigQueryWriteClient,
    stream: str,
    request: storage_types.AppendRowsRequest,
) -> storage_types.AppendRowsResponse | None:
    """The one AppendRows of a stream, retried here, not by the library: its default retry
    of AppendRows calls again with the request iterator it already drained, sending no
    rows. None when no attempt was answered."""
    # The stream's name routes the call (the client library's writer sends the same).
    metadata = (("x-goog-request-params", f"write_stream={stream}"),)
    response = None
    for attempt in range(1, APPEND_ATTEMPTS + 1):
        try:
            answers = client.append_rows(
                iter([request]), retry=None, timeout=APPEND_TIMEOUT_SECONDS, metadata=metadata
            )
            response = next(iter(answers), None)
        except _RETRYABLE:
            if attempt == APPEND_ATTEMPTS:
                raise
            time.sleep(0.25 * attempt)
            continue
        if response is not None:
            break
    return response


def load_parquet(client: bigquery.Client, ref: str, table: str, data: bytes, job_id: str) -> bool:
    """Append one Parquet file to the table `ref` as the load job `job_id`; False when that
    job already existed (this very file, or this delivery, was loaded before, or is being
    loaded by a twin run right now), after waiting for it."""
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
    )
    loaded = True
    try:
        job: AnyJob  # get_job answers whatever kind the id names (here: this load)
        try:
            job = client.load_table_from_file(
                io.BytesIO(data), ref, job_id=job_id, job_config=config, size=None
            )
        except gexc.Conflict:
            job, loaded = client.get_job(job_id), False
        job.result(timeout=LOAD_TIMEOUT_SECONDS)
    except (gexc.GoogleAPIError, TimeoutError) as exc:
        raise WarehouseError(f"append to {table} failed: {exc}") from None
    if job.errors:
        raise WarehouseError(f"append to {table} rejected: {job.errors[:3]}")
    return loaded


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
