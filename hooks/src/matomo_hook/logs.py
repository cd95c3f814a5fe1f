"""JSON-lines logging on stderr with secret redaction; a command's result on stdout.

Every record becomes one JSON object on one line with at least ``event``,
``level`` and ``ts``; callers add ``state``, ``step`` and ``duration_s``.
The :class:`RedactingFilter` replaces every configured secret value in the
message, the extra fields and the formatted exception text/traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any

LOGGER_NAME = "matomo_hook"
REDACTED = "[REDACTED]"
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class Redactor:
    """Holds the secret values; replaces them in any text."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, *values: str | None) -> None:
        for value in values:
            if value and value not in self._secrets:
                self._secrets.append(value)
        # longest first so a secret containing another is fully removed
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def redact_obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_obj(v) for v in value]
        return value


REDACTOR = Redactor()

# Defaults every line carries: the last known schema state and the current step.
CONTEXT: dict[str, Any] = {"state": None, "step": None}
_START = time.monotonic()


class RedactingFilter(logging.Filter):
    """Renders message and exception text up front and redacts both."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = self.redactor.redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED:
                record.__dict__[key] = self.redactor.redact_obj(value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        for key, value in CONTEXT.items():
            data.setdefault(key, value)
        # seconds since the process started unless the event measured its own
        data.setdefault("duration_s", round(time.monotonic() - _START, 3))
        if record.exc_text:
            data["traceback"] = record.exc_text
        return json.dumps(data, default=str, sort_keys=False)


def setup(secrets: Iterable[str | None] = (), level: int = logging.INFO) -> logging.Logger:
    """Configures the hook's logger (idempotent) and registers secrets."""
    REDACTOR.add(*secrets)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    logger.propagate = False
    if not any(getattr(h, "_matomo_hook", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RedactingFilter(REDACTOR))
        handler._matomo_hook = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


def result(data: dict[str, Any]) -> None:
    """Prints a command's result as one JSON line on stdout (the log is on stderr)."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs one event with extra fields (state, step, duration_s, ...).
    A ``state`` given here becomes the default of the following lines."""
    if fields.get("state") is not None:
        CONTEXT["state"] = fields["state"]
    get().log(level, name, extra=fields)
