"""Start bqemulator (`python -m tests.bqemulator_main start ...`, the same arguments as
`python -m bqemulator`) with a query's result table readable over its Storage Read API.

BigQuery keeps each query's result in an anonymous table and the client library reads a
large result from it with the Storage Read API (`RowIterator.to_arrow(bqstorage_client=)`).
bqemulator 1.4 names that table in the job (`_bqemu_anonymous.anon<job id>`,
`jobs/executor.py: _build_query_configuration`) but keeps the rows in memory
(`JOB_RESULTS`), and its Read servicer reads every session's table from DuckDB
(`grpc_api/read_servicer.py: _handle_create_read_session` -> `engine.fetch_arrow`), so a
read session on a query result fails with NOT_FOUND. This launcher gives the Read servicer
those rows when a session names a result table; sessions, streams, Arrow serialisation and
every other table are the emulator's own.

The emulator parses each statement about twelve times on its way (DDL detection, job
classification, table and row-access rewriting: 47 `sqlglot.parse_one` calls), which was
56 % of its time in the end-to-end replay. This launcher keeps each statement's tree and
hands every caller a copy (~6x cheaper than parsing again): the same trees, none shared,
so what the emulator does is unchanged. Nothing else is changed.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from bqemulator.cli import main
from bqemulator.grpc_api import read_servicer
from bqemulator.jobs.executor import JOB_RESULTS
from sqlglot import exp

# The quoted DuckDB reference read_servicer builds for projects/P/datasets/_bqemu_anonymous/
# tables/anon<hex> (bqemulator.storage.sql_identifiers.quoted_table_ref).
_RESULT_REF = re.compile(r'"[^"]*___bqemu_anonymous"\."anon([A-Za-z0-9_]+)"')


def _result(name: str) -> pa.Table | None:
    for job_id, table in list(JOB_RESULTS.items()):
        if job_id.replace("-", "") == name:
            return table
    return None


class _Engine:
    """The emulator's engine, except that a query result's table is read from memory."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def fetch_arrow(self, sql: str, parameters: list[Any] | None = None) -> pa.Table:
        match = _RESULT_REF.search(sql)
        result = _result(match.group(1)) if match else None
        if match is None or result is None:
            return self._engine.fetch_arrow(sql, parameters)
        con = duckdb.connect()
        try:
            con.register("query_result", result)
            out = con.execute(sql.replace(match.group(0), "query_result")).to_arrow_table()
        finally:
            con.close()
        # The result's own schema (with the emulator's type annotations), columns as selected.
        return out.cast(pa.schema([result.schema.field(n) for n in out.column_names]))


class _Context:
    def __init__(self, context: Any) -> None:
        self._context = context
        self.engine = _Engine(context.engine)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


_init = read_servicer.BigQueryReadHandler.__init__


def _read_handler_init(self: read_servicer.BigQueryReadHandler, context: Any) -> None:
    _init(self, _Context(context))  # type: ignore[arg-type]


read_servicer.BigQueryReadHandler.__init__ = _read_handler_init  # type: ignore[method-assign]

_parse_one = sqlglot.parse_one


@functools.lru_cache(maxsize=1024)
def _parsed(sql: str, read: str | None) -> exp.Expression:
    return _parse_one(sql, read=read)


def _parse_one_kept(sql: Any, read: Any = None, dialect: Any = None, **opts: Any) -> Any:
    """`sqlglot.parse_one`, each (statement, dialect) parsed once; a copy per call."""
    if (
        isinstance(sql, str)
        and dialect is None
        and not opts
        and (read is None or isinstance(read, str))
    ):
        return _parsed(sql, read).copy()  # a statement that fails to parse is not kept
    return _parse_one(sql, read=read, dialect=dialect, **opts)


sqlglot.parse_one = _parse_one_kept

if __name__ == "__main__":
    main()
