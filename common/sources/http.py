"""One HTTP session for the public APIs: timeouts, and retries with backoff on 429, 5xx and
dropped connections (honouring Retry-After), via urllib3's Retry rather than a loop of
our own. Errors come back as one readable line, with secrets scrubbed from URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from common.core.errors import BadGateway

RETRY_STATUSES = (429, 500, 502, 503, 504)


class SourceError(BadGateway):
    """A public API could not be reached or answered badly (502); the message is one line."""


def make_session(
    retries: int = 4, backoff: float = 0.5, backoff_max: float = 30.0
) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        status_forcelist=RETRY_STATUSES,
        allowed_methods={"GET", "POST"},
        backoff_factor=backoff,
        backoff_max=backoff_max,
        respect_retry_after_header=True,
        retry_after_max=120,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "aircast/0.1 (air-quality forecasting pipeline)"
    return session


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret (e.g. an API token in a URL) with ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"(token=)[^&\s'\"]+", r"\1***", text)


def get(
    session: requests.Session,
    url: str,
    params: dict[str, Any] | None = None,
    timeout: float = 30.0,
    secrets: Iterable[str | None] = (),
) -> requests.Response:
    """GET with the session's retries; a network failure becomes one clear SourceError."""
    host = urlsplit(url).netloc
    try:
        return session.get(url, params=params, timeout=timeout)
    except requests.exceptions.RetryError as exc:
        raise SourceError(f"{host}: still failing after retries ({_reason(exc)})") from None
    except requests.exceptions.Timeout:
        raise SourceError(f"{host}: no answer within {timeout:g}s (after retries)") from None
    except requests.exceptions.ConnectionError as exc:
        if "ReadTimeoutError" in str(exc) or "timed out" in str(exc):
            raise SourceError(f"{host}: no answer within {timeout:g}s (after retries)") from None
        raise SourceError(
            f"cannot reach {host}: {redact(_reason(exc), secrets)} (is the network up?)"
        ) from None
    except requests.RequestException as exc:
        raise SourceError(f"{host}: {redact(str(exc), secrets)}") from None


_KNOWN = (
    (
        ("NameResolutionError", "Failed to resolve", "Name or service not known"),
        "cannot resolve host",
    ),
    (("Connection refused",), "connection refused"),
    (("Network is unreachable",), "network unreachable"),
    (("timed out", "TimeoutError"), "timed out"),
    (("SSLError", "CERTIFICATE"), "TLS error"),
)


def _reason(exc: Exception) -> str:
    """A short, stable reason instead of urllib3's nested repr."""
    text = str(exc)
    for needles, reason in _KNOWN:
        if any(n in text for n in needles):
            return reason
    return text[:160]
