"""Reading a request's query string: the query models validated from it (a bad value is a
400 naming the parameter), and the check that it names only what the route documents."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from common.core.errors import BadRequest, validation_message
from common.runtime.body import truncate
from common.serving.models import ForecastQuery

Q = TypeVar("Q", bound=BaseModel)
# Per documented path: the query parameters it takes, and those of them that may repeat.
Accepted = dict[str, tuple[frozenset[str], frozenset[str]]]


def forecast_query(args: MultiDict[str, str]) -> ForecastQuery:
    try:
        return ForecastQuery.model_validate(
            {k: args.get(k) for k in ("hours", "observations") if k in args}
        )
    except ValidationError as exc:
        name, message = validation_message(exc)
        raise BadRequest(message, field=name) from None


def validated(model: type[Q], args: MultiDict[str, str]) -> Q:
    """A query model from the request's parameters (the model's fields only); a bad one is a
    400 naming it."""
    try:
        return model.model_validate({k: args.get(k) for k in model.model_fields if k in args})
    except ValidationError as exc:
        name, message = validation_message(exc, where="query")
        raise BadRequest(message, field=name) from None


def check_query(
    args: MultiDict[str, str],
    template: str,
    accepted: Accepted,
    extra: frozenset[str] = frozenset(),
) -> None:
    """A 400 naming a query parameter the route (`template`, as documented) does not take
    (nor `extra`), or one given twice that is not a list (`?location=a&location=b` is one)."""
    names, arrays = accepted.get(template, (frozenset(), frozenset()))
    names = names | extra
    unknown = sorted(set(args) - names)
    if unknown:
        shown = ", ".join(truncate(n, 60) for n in unknown)
        raise BadRequest(
            f"unknown query parameter: {shown} (this route takes: "
            f"{', '.join(sorted(names)) or 'none'})",
            field=unknown[0][:60],
        )
    repeated = sorted(n for n in args if n not in arrays and len(args.getlist(n)) > 1)
    if repeated:
        raise BadRequest(
            f"query parameter given more than once: {', '.join(repeated)}", field=repeated[0]
        )
