"""The Warehouse port: create the schema, append rows, run parameterised SQL.

Tables are append-only and read through views that keep the newest row per key, so an
append never needs DML and a retried append never changes what readers see.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from common.core.config import Settings
from common.core.errors import AircastError
from common.core.schema import TABLES, Table
from common.core.views import VIEWS
from common.warehouse.sql import SQLError, check_identifier, check_params, plain, qualify


class WarehouseError(AircastError):
    """A warehouse operation failed (500; the message says which and why)."""


class Warehouse(ABC):
    """Port for the analytical store. SQL is BigQuery-dialect with unqualified tables."""

    dialect: str = "bigquery"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dataset = check_identifier(settings.dataset, "dataset name")

    # -- schema -------------------------------------------------------------------------
    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the dataset, tables and views if missing; add new nullable columns."""

    @abstractmethod
    def relations(self) -> dict[str, list[tuple[str, str]]]:
        """Existing tables and views with their (column, BigQuery type) lists."""

    # -- data ---------------------------------------------------------------------------
    def append(self, table: str, frame: pd.DataFrame, key: str | None = None) -> int:
        """Append rows (columns named as in `common.core.schema`); return the count written.

        `key` names the delivery (e.g. the job, its window and as_of): the same rows under
        the same key, whichever run sends them (their run_id, ingested_at, created_at...
        aside), are written once, so concurrent or retried deliveries of one request
        (Cloud Scheduler delivers at least once) leave one copy. Without a key every call
        appends."""
        spec = _table(table)
        frame = conform(spec, frame)
        if frame.empty:
            return 0
        if key is None:
            return self._append(spec, frame)
        return self._append_once(spec, frame, delivery_id(f"{self.dataset}.{table}", key, frame))

    @abstractmethod
    def _append(self, table: Table, frame: pd.DataFrame) -> int: ...

    @abstractmethod
    def _append_once(self, table: Table, frame: pd.DataFrame, delivery: str) -> int:
        """Append unless `delivery` was appended before (then 0): atomically, so two
        concurrent deliveries leave one copy."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run BigQuery-dialect SQL with named `@params`; return a DataFrame."""
        return self._query(self.render(sql), check_params(params))

    def render(self, sql: str) -> str:
        """Qualify tables with this warehouse's dataset and translate to its dialect."""
        return qualify(sql, self.dialect, self.dataset, self._project())

    def _project(self) -> str | None:
        return None

    @abstractmethod
    def _query(self, sql: str, params: dict[str, Any]) -> pd.DataFrame: ...

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold what the adapter opens per operation across a block of them (one job's
        reads and writes). Nothing to hold by default: a client is already shared."""
        yield

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (adapters that hold any override this)."""


# Columns that tell deliveries of one request apart (who wrote the rows and when), not
# what they say: left out of the delivery's identity.
PER_RUN_COLUMNS = frozenset({"run_id", "ingested_at", "created_at", "rejected_at", "updated_at"})


def delivery_id(table: str, key: str, frame: pd.DataFrame) -> str:
    """The identity of one delivery: the table, its key and its rows' content (per-run
    columns aside, row order aside)."""
    content = frame[[c for c in frame.columns if c not in PER_RUN_COLUMNS]]
    rows = np.sort(pd.util.hash_pandas_object(content, index=False).to_numpy())
    digest = hashlib.sha256(f"{table}\n{key}\n".encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()[:40]


def _table(name: str) -> Table:
    check_identifier(name, "table name")
    if name not in TABLES:
        if name in VIEWS:
            raise WarehouseError(f"{name} is a view; append to its table instead")
        raise WarehouseError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    return TABLES[name]


def conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with exactly the table's columns, in order, with schema types.

    Unknown columns and missing required values are errors (they would be silently
    dropped or rejected by BigQuery); missing nullable columns become NULL.
    """
    unknown = [c for c in frame.columns if c not in table.column_names]
    if unknown:
        raise WarehouseError(f"{table.name}: unknown columns {unknown}")
    out = pd.DataFrame(index=frame.index)
    for col in table.columns:
        values = (
            frame[col.name] if col.name in frame.columns else pd.Series(None, index=frame.index)
        )
        try:
            out[col.name] = _coerce(values, col.type)
        except (TypeError, ValueError) as exc:
            raise WarehouseError(
                f"{table.name}.{col.name}: cannot convert to {col.type}: {exc}"
            ) from None
        if col.required and out[col.name].isna().any():
            raise WarehouseError(f"{table.name}.{col.name} is required but has missing values")
    return out.reset_index(drop=True)


def _coerce(values: pd.Series, type_: str) -> pd.Series:
    if type_ == "TIMESTAMP":
        return pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    if type_ == "FLOAT64":
        out = pd.to_numeric(values, errors="raise").astype("float64")
        return out.where(np.isfinite(out), np.nan)
    if type_ == "INT64":
        return pd.to_numeric(values, errors="raise").astype("Int64")
    if type_ == "BOOL":
        return values.astype("boolean")
    if type_ == "STRING":
        out = values.astype("object").where(values.notna(), None)
        if pd.api.types.infer_dtype(out, skipna=True) in {"string", "empty"}:
            return out  # already text: skip the per-value conversion (seconds at 1M rows)
        return out.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    raise SQLError(f"unsupported column type {type_}")


def json_ready(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-serialisable dicts: RFC 3339 timestamps, NULL for NaN/NA."""
    cols = {}
    for name in frame.columns:
        s = frame[name]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            cols[name] = [None if pd.isna(v) else v.isoformat() for v in s]
        else:
            cols[name] = [None if _missing(v) else plain(v) for v in s]
    return [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)
