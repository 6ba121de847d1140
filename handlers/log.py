"""One JSON object per line, so CLS can index every field (request id, job, key, verdict...).

Known secret values (the SecretKey, the session token, the callback tokens) are replaced in
every line as it is written: code that never logs them is the first defence, this the last.
The COS SDK's own logger writes through the same formatter.
"""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values would blot out ordinary words, and are no secret anyway
SDK_LOGGER = "qcloud_cos"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
LOGGER_NAME = "ci_callback_verifier"
_logger = logging.getLogger(LOGGER_NAME)
_secret_forms: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "message": record.getMessage(),
        }
        request_id = _request_id.get()
        if request_id:
            entry["requestId"] = request_id
        if record.name != _logger.name:
            entry["logger"] = record.name
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


def redact(line: str) -> str:
    for form in _secret_forms:
        line = line.replace(form, REDACTED)
    return line


def register_secrets(values: Iterable[str | None]) -> None:
    """Add values no log line may show, in every form a line could carry them: as they are,
    escaped inside a JSON string, and percent-encoded in a URL."""
    global _secret_forms
    with _secrets_lock:
        forms = set(_secret_forms)
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                forms.update((value, json.dumps(value, ensure_ascii=False)[1:-1], quote(value, safe="")))
        _secret_forms = tuple(sorted(forms, key=len, reverse=True))  # a longer secret may contain a shorter


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time (runtimes and test runners replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def setup(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    register_secrets(secrets)
    for logger in (_logger, logging.getLogger(SDK_LOGGER)):
        if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
            handler = _StdoutHandler(sys.stdout)
            handler.setFormatter(JsonFormatter())
            logger.addHandler(handler)
        logger.propagate = False  # the root logger's handlers (the runtime's) would not redact
    _logger.setLevel(level)  # the SDK keeps the level handlers/storage/clients.py gives it


def bind_request(request_id: str) -> None:
    _request_id.set(request_id)


def info(message: str, **fields: Any) -> None:
    _logger.info(message, extra={"fields": fields})


def warning(message: str, **fields: Any) -> None:
    _logger.warning(message, extra={"fields": fields})


def error(message: str, exc_info: bool = False, **fields: Any) -> None:
    _logger.error(message, exc_info=exc_info, extra={"fields": fields})


# --- levels that carry meaning: a CLS alarm on `level:"WARNING"` or `level:"ERROR"` finds the problems ---

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
VERDICT_COUNTS = ("verified", "mismatch", "missing", "unverifiable", "superseded", "error", "pending")
_VERDICT_LEVELS = {"mismatch": logging.WARNING, "missing": logging.WARNING, "error": logging.ERROR}
_OUTCOME_LEVELS = {"failed": logging.WARNING, "failed-job": logging.WARNING, "retry": logging.ERROR}


def verdict_level(verdict: str, failed_action: bool = False) -> int:
    """INFO for verified, unverifiable, superseded (and pending); WARNING for mismatch and
    missing; ERROR for error, and for any object whose tag or move failed (it needs another try)."""
    return logging.ERROR if failed_action else _VERDICT_LEVELS.get(verdict, logging.INFO)


def outcome_level(outcome: str) -> int:
    return _OUTCOME_LEVELS.get(outcome, logging.INFO)


def at(level: int, message: str, **fields: Any) -> None:
    _logger.log(level, message, extra={"fields": fields})
