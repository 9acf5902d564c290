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
so what the emulator does is unchanged.

The emulator uses one DuckDB connection (`storage/engine.py`) from two kinds of thread: its
event loop runs every REST request, and grpc.aio runs the Storage Read and Write handlers on
worker threads. Its two write locks (the engine's asyncio.Lock, the Write servicer's
threading.RLock) do not exclude each other, and DuckDB's Python binding can wait for the
connection's context lock while holding the GIL (`execute` -> `ExtractStatements`) and for
the GIL while holding that lock (dropping a registered Arrow view, `unregister` ->
`~PythonDependencyItem`). A REST query beside a Storage Write append then deadlocks the
process: the loop holds the GIL and waits for the context lock, the write thread holds the
context lock and waits for the GIL (gdb on a stalled run: `docs/benchmarks.md`). This
launcher runs the Write servicer's flush (register, INSERT, unregister, the row count, the
table's snapshot) and the Read servicer's table reads on the event loop, the flush under the
engine's write lock, so one thread uses the connection, as the REST side already assumes
(`tabledata.list`, a sync route on a worker thread, still reads it off the loop; nothing here
calls it). Nothing else is changed.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import sqlglot
from bqemulator.cli import main
from bqemulator.grpc_api import read_servicer, write_servicer
from bqemulator.jobs.executor import JOB_RESULTS
from sqlglot import exp

_T = TypeVar("_T")


def _on_loop(loop: asyncio.AbstractEventLoop, work: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """`work()` run on the emulator's event loop, waited for from a gRPC worker thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # not reached: gRPC's sync handlers run on worker threads
        raise RuntimeError("the emulator's event loop cannot wait for itself")
    return asyncio.run_coroutine_threadsafe(work(), loop).result()


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

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._engine = engine
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def fetch_arrow(self, sql: str, parameters: list[Any] | None = None) -> pa.Table:
        match = _RESULT_REF.search(sql)
        result = _result(match.group(1)) if match else None
        if match is None or result is None:  # a table: the engine's connection, on the loop

            async def read() -> pa.Table:
                return self._engine.fetch_arrow(sql, parameters)

            return _on_loop(self._loop, read)
        con = duckdb.connect()
        try:
            con.register("query_result", result)
            out = con.execute(sql.replace(match.group(0), "query_result")).to_arrow_table()
        finally:
            con.close()
        # The result's own schema (with the emulator's type annotations), columns as selected.
        return out.cast(pa.schema([result.schema.field(n) for n in out.column_names]))


class _Context:
    def __init__(self, context: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self.engine = _Engine(context.engine, loop)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


_init = read_servicer.BigQueryReadHandler.__init__


def _read_handler_init(self: read_servicer.BigQueryReadHandler, context: Any) -> None:
    # Built by the server's start, on its event loop.
    _init(self, _Context(context, asyncio.get_running_loop()))  # type: ignore[arg-type]


read_servicer.BigQueryReadHandler.__init__ = _read_handler_init  # type: ignore[method-assign]

_write_init = write_servicer.BigQueryWriteHandler.__init__
_flush_to_target = write_servicer.BigQueryWriteHandler._flush_to_target


def _write_handler_init(self: write_servicer.BigQueryWriteHandler, *args: Any, **kw: Any) -> None:
    _write_init(self, *args, **kw)
    self.event_loop = asyncio.get_running_loop()  # type: ignore[attr-defined]  # built on it


def _flush_on_loop(self: write_servicer.BigQueryWriteHandler, stream: Any, rows: pa.Table) -> None:
    """The emulator's flush of appended rows, run on its event loop under its write lock."""

    async def flush() -> None:
        async with self._ctx.engine.write_lock():
            _flush_to_target(self, stream, rows)

    _on_loop(self.event_loop, flush)  # type: ignore[attr-defined]


write_servicer.BigQueryWriteHandler.__init__ = _write_handler_init  # type: ignore[method-assign]
write_servicer.BigQueryWriteHandler._flush_to_target = _flush_on_loop  # type: ignore[method-assign]

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
