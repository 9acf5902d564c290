"""The one redaction of secrets: applied to every value a source hands over to be stored
(payloads, reasons, URLs, exception text), to every run row and answer, and to every
log line.

It replaces the value of every configured secret setting (each `SecretStr` field of
`Settings`, whatever its name: a new source's key is covered by declaring it a secret)
and the value of credential-like URL or form parameters (`token=`, `key=`, `api_key=`,
`access_token=`, ...), because a public API may echo its request (a URL, a header) in an
error page or a malformed answer that would otherwise be quarantined verbatim.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from typing import Any

from pydantic import SecretStr

from common.core.config import ConfigError, Settings, get_settings

MASK = "***"

# name=value where the name says credential: token, key, secret, password, signature,
# with the usual prefixes (api_key, access_token, client_secret, x-api-key, ...).
_CREDENTIAL_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:[a-z0-9]+[_-])*(?:token|key|apikey|secret|password|passwd|pwd|"
    r"sig|signature|auth|authorization|credential|credentials)(?:%3D|=))"
    r"(?!\*\*\*)[^&\s'\"<>;,)}\]\\]+"
)
# The same names as JSON or a header echo prints them: "api_key": "<value>".
_CREDENTIAL_FIELD = re.compile(
    r"(?i)((?<![A-Za-z0-9])[\"']?(?:[a-z0-9]+[_-])*(?:token|key|apikey|secret|password|"
    r"signature|authorization|credentials?)[\"']?\s*[:]\s*[\"'])(?!\*\*\*)[^\"']+"
)
# Authorization: Bearer <token> as echoed headers print it.
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]+")

_lock = threading.Lock()
_remembered: set[str] = set()
_MIN_SECRET = 4  # shorter values would blank ordinary text; no real credential is this short


def secret_values(settings: Settings) -> set[str]:
    """The values of every secret setting of `settings` (each SecretStr field)."""
    out = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            if len(text) >= _MIN_SECRET:
                out.add(text)
    return out


def remember(settings: Settings) -> None:
    """Redact `settings`' secrets from now on (settings built in code, not from the
    environment, e.g. a source constructed with overrides)."""
    values = secret_values(settings)
    if not values <= _remembered:
        with _lock:
            _remembered.update(values)


def _secrets() -> list[str]:
    values = set(_remembered)
    with contextlib.suppress(ConfigError):
        values |= secret_values(get_settings())
    return sorted(values, key=len, reverse=True)  # a longer secret before its prefix


def redact(text: str) -> str:
    """`text` with every configured secret and credential-like parameter value masked."""
    if not text:
        return text
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _CREDENTIAL_PARAM.sub(lambda m: m.group(1) + MASK, text)
    text = _CREDENTIAL_FIELD.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def redact_value(value: Any) -> Any:
    """`value` with `redact` applied to every string inside (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


_factory_lock = threading.Lock()
_installed = False


def install_log_redaction() -> None:
    """Redact every log record of the process as it is made, ours and libraries' alike
    (urllib3 logs a retried URL, query string and all, at WARNING). Idempotent."""
    global _installed
    with _factory_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is logging's to report, not ours
                return record
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
