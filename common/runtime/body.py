"""The request body, read under one size limit (AIRCAST_MAX_REQUEST_BYTES) by every function,
and the bounds on what a caller may send (JSON depth, string length, NUL bytes, query
parameters), so that no input, however odd, reaches a job as anything but a 4xx.

A caller's oversized body is a 413 naming the limit, decided from Content-Length before
reading when it is given, and while reading otherwise (a chunked body stops at the limit),
so a large upload never fills the instance's memory.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from common.core.errors import BadRequest, PayloadTooLarge


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body larger than {limit} bytes (AIRCAST_MAX_REQUEST_BYTES)", field="body"
    )


def read_body(request: Request, limit: int) -> bytes:
    """The raw body (cached on the request), or PayloadTooLarge when over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    request.max_content_length = limit  # enforced by werkzeug while streaming
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large(limit) from None
    if len(data) > limit:
        raise too_large(limit)
    if request.content_length is None and len(data) == limit:
        # A streamed (chunked) body is cut at the limit without a word (werkzeug's
        # LimitedStream reads up to it); one more byte tells a cut body from an exact one.
        try:
            more = request.stream.read(1)
        except RequestEntityTooLarge:
            raise too_large(limit) from None
        if more:
            raise too_large(limit)
    return data


# Caller input bounds, one place for every function and the api: a body nested deeper than
# this is refused before parsing (json's recursive parser would raise RecursionError at
# ~1,000 levels, a 500); no request names anything longer than a few hundred characters,
# and a NUL byte is never part of a name, a path or a time.
MAX_JSON_DEPTH = 32
MAX_STRING_CHARS = 4096
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - _OPEN - _CLOSE))


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, without parsing it (strings,
    whose brackets do not count, are skipped)."""
    skeleton = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    # Pure Python, no numpy: the api's cold start must stay light (tests/serving/test_api.py).
    return max(itertools.accumulate(1 if b in _OPEN else -1 for b in skeleton), default=0)


def parse_json(raw: bytes, where: str = "body") -> Any:
    """JSON text to a value, or a 400: not JSON, nested deeper than MAX_JSON_DEPTH, or a
    string with a NUL or over MAX_STRING_CHARS (named by its field)."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels", field=where)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"{where}: not valid JSON", field=where) from None
    check_strings(value, "")
    return value


def check_strings(value: Any, field: str) -> None:
    """A 400 naming the field of the first string (key or value) holding a NUL character or
    longer than MAX_STRING_CHARS."""
    if isinstance(value, str):
        where = field or "body"
        if "\x00" in value:
            raise BadRequest(f"{where}: contains a NUL character", field=where)
        if len(value) > MAX_STRING_CHARS:
            raise BadRequest(f"{where}: longer than {MAX_STRING_CHARS} characters", field=where)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else str(key)
            check_strings(key, field or "body")
            check_strings(item, name[:100])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_strings(item, f"{field}.{i}" if field else str(i))


def query_args(request: Request, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """The query string as {name: value}; a 400 naming a parameter given twice, one not in
    `allowed` (when given), or a value with a NUL or over MAX_STRING_CHARS. A value that is
    a JSON number, true, false or null is read as that (`?shard=1`), others as text."""
    names = list(dict.fromkeys(request.args.keys()))
    repeated = sorted(n for n in names if len(request.args.getlist(n)) > 1)
    if repeated:
        shown = ", ".join(truncate(n, 60) for n in repeated)
        raise BadRequest(f"query parameter given more than once: {shown}", field=repeated[0][:60])
    if allowed is not None:
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            shown = ", ".join(truncate(n, 60) for n in unknown)
            raise BadRequest(f"unknown query parameter: {shown}", field=unknown[0][:60])
    out: dict[str, Any] = {}
    for name in names:
        value = request.args[name]
        check_strings(name, "query")
        check_strings(value, name[:60])
        out[name] = _scalar(value)
    return out


def _scalar(text: str) -> Any:
    if _JSON_SCALAR.fullmatch(text):
        return json.loads(text)
    return text


_JSON_SCALAR = re.compile(r"-?\d{1,18}(\.\d{1,18})?|true|false|null")


def truncate(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters (an echoed caller value stays short)."""
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} characters)"
