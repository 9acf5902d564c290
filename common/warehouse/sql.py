"""SQL is written once, in BigQuery's dialect; sqlglot qualifies and translates it.

Table names in aircast's SQL are unqualified (`observations`); `qualify` points them at the
configured dataset (and project) and renders them for the target engine. Values are never
formatted into SQL: they travel as named parameters (`@as_of`).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify_tables import qualify_tables

from common.core.config import IDENTIFIER
from common.core.errors import AircastError

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SQLError(AircastError):
    """The SQL could not be parsed or translated, or a parameter is unusable (500: our SQL
    is ours to fix; the operator's `aircast sql` shows the message)."""


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a safe unquoted identifier, else raise SQLError."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise SQLError(f"invalid {what}: {name!r}")
    return name


@functools.lru_cache(maxsize=512)
def qualify(sql: str, dialect: str, dataset: str, project: str | None = None) -> str:
    """Point unqualified tables at `dataset` (and `project`), rendered for `dialect`.

    `dialect` is a sqlglot dialect name: "bigquery" or "duckdb".
    """
    try:
        statements = sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.ParseError as exc:
        raise SQLError(f"cannot parse SQL: {exc}") from None
    out = []
    for statement in statements:
        if statement is None:
            continue
        if isinstance(statement, exp.Query | exp.Create | exp.Insert | exp.Delete):
            statement = qualify_tables(statement, db=dataset, catalog=project)
        out.append(statement.sql(dialect=dialect))
    if not out:
        raise SQLError("empty SQL")
    return ";\n".join(out)


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate parameter names; turn pandas/numpy values into plain Python ones."""
    clean: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if not PARAM_NAME.match(name):
            raise SQLError(f"invalid parameter name: {name!r}")
        value = [plain(v) for v in value] if isinstance(value, list | tuple) else plain(value)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, dt.datetime) and v.tzinfo is None:
                raise SQLError(f"parameter {name!r} is a naive datetime; pass a UTC-aware one")
        clean[name] = value
    return clean


def plain(value: Any) -> Any:
    """A pandas/numpy scalar as the Python value the database clients take."""
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # numpy scalar
    return value
