"""The request body, read under one size limit (AIRCAST_MAX_REQUEST_BYTES) by every function.

A caller's oversized body is a 413 naming the limit, decided from Content-Length before
reading when it is given, and while reading otherwise (a chunked body stops at the limit),
so a large upload never fills the instance's memory.
"""

from __future__ import annotations

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from common.core.errors import PayloadTooLarge


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
    return data
