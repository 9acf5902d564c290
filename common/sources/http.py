"""One HTTP session for the public APIs: timeouts, and retries with backoff on 429, 5xx and
dropped connections (honouring Retry-After, or an x-ratelimit-reset when a 429 has no
Retry-After), via urllib3's Retry rather than a loop of our own. Errors come back as one
readable line, with secrets scrubbed from URLs.

An API with a request budget (OpenAQ: per minute and per hour, per key) also gets a
`Pacer`: pyrate-limiter's sliding windows before each request, and a pause until the
window resets when the server says none are left (`x-ratelimit-remaining: 0`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from common.core.errors import BadGateway
from common.core.redaction import MASK
from common.core.redaction import redact as redact_text

RETRY_STATUSES = (429, 500, 502, 503, 504)
_SECONDS = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")


class SourceError(BadGateway):
    """A public API could not be reached or answered badly (502); the message is one line."""


class RateLimitRetry(Retry):
    """urllib3's Retry that also waits out a 429's `x-ratelimit-reset` (seconds until the
    window resets, as OpenAQ sends it) when the answer has no Retry-After."""

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        reset = response.headers.get("x-ratelimit-reset")
        if seconds is None and response.status == 429 and reset and _SECONDS.match(reset):
            seconds = min(float(reset), float(self.retry_after_max))
        return seconds


class Pacer:
    """Keeps a client inside an API's request budget, shared by every session of a process.

    Before a request: wait for a slot in each window (`per_minute`, `per_hour`). After
    one: when the server says no request is left in its window, wait out its reset before
    the next. `sleep` is injectable so tests can see the waits without taking them.
    """

    def __init__(
        self,
        per_minute: int,
        per_hour: int,
        sleep: Callable[[float], None] = time.sleep,
        max_pause: float = 120.0,
    ) -> None:
        # pyrate-limiter wants windows that bind: a minute's limit below the hour's, and an
        # hour's below 60 minutes' worth; a window the other makes redundant is left out.
        self.rates = [Rate(per_minute, Duration.MINUTE)] if per_minute < per_hour else []
        if per_hour < 60 * per_minute:
            self.rates.append(Rate(per_hour, Duration.HOUR))
        self.limiter = Limiter(InMemoryBucket(self.rates))
        self.sleep = sleep
        self.max_pause = max_pause
        self.requests = 0
        self.paused: list[float] = []  # each pause taken on the server's word, in seconds
        self._lock = threading.Lock()

    def wait(self) -> None:
        self.limiter.try_acquire("requests")
        with self._lock:
            self.requests += 1

    def observe(self, response: requests.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = response.headers.get("x-ratelimit-reset")
        if remaining is None or not _SECONDS.match(remaining) or float(remaining) > 0:
            return
        pause = min(float(reset), self.max_pause) if reset and _SECONDS.match(reset) else 60.0
        if pause > 0:
            self.paused.append(pause)
            self.sleep(pause)


def make_session(
    retries: int = 4, backoff: float = 0.5, backoff_max: float = 30.0
) -> requests.Session:
    retry = RateLimitRetry(
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


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` through the one redaction (common.core.redaction), after masking `secrets`
    (a caller's own, e.g. a token handed to it in code)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact_text(text)


def get(
    session: requests.Session,
    url: str,
    params: dict[str, Any] | None = None,
    timeout: float = 30.0,
    secrets: Iterable[str | None] = (),
    pacer: Pacer | None = None,
) -> requests.Response:
    """GET with the session's retries (and `pacer`'s budget, if given); a network failure
    becomes one clear SourceError."""
    host = urlsplit(url).netloc
    try:
        if pacer is not None:
            pacer.wait()
        response = session.get(url, params=params, timeout=timeout)
        if pacer is not None:
            pacer.observe(response)
        return response
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
