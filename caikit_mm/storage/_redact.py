"""Keep secrets out of the log lines of the libraries that read object stores.

botocore logs request headers, the string it signs and response bodies at
DEBUG level, and a rejected request's response can echo the session token. A
filter on those libraries' loggers replaces every registered secret by
``***`` before the record reaches any handler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Final

# Top-level logger names of the libraries that talk to object stores.
LIBRARY_LOGGERS: Final = (
    "botocore",
    "aiobotocore",
    "boto3",
    "s3fs",
    "fsspec",
    "urllib3",
    "aiohttp",
    "gcsfs",
    "adlfs",
)

_secrets: list[str] = []
_lock = threading.Lock()


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secrets
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, secrets)
        return True


_FILTER: Final = _RedactingFilter()


def protect_secrets(secrets: Iterable[str]) -> None:
    """Register ``secrets`` and filter them out of the libraries' loggers,
    including loggers created since the last call."""
    global _secrets
    new = [secret for secret in secrets if len(secret) >= 4]
    with _lock:
        merged = sorted(set(_secrets) | set(new), key=len, reverse=True)
        _secrets = merged
        names = list(logging.Logger.manager.loggerDict)
        for name in [*LIBRARY_LOGGERS, *names]:
            if name.split(".", 1)[0] not in LIBRARY_LOGGERS:
                continue
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
