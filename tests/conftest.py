"""Fixtures: a fresh COS emulator per test and the function configured against it."""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from handlers import log
from handlers.app import App
from handlers.settings import Settings
from localcloud.cos import CosEmulator
from tests.samples import BUCKET, REGION

SECRET_ID = "AKIDtestid0000000000000000000000"
SECRET_KEY = "test-secret-key-0000000000000000"
TOKEN = "test-session-token"
CALLBACK_TOKEN = "test-token"
# test_missing_bucket_reads_as_missing names a bucket that does not exist; it is still allowed.
ALLOWED_BUCKETS = f"{BUCKET},nobucket-1250000000"
SECRETS = (SECRET_KEY, TOKEN, CALLBACK_TOKEN)


class _LogLines(logging.Handler):
    """Every line the function's logger and the COS SDK's would write, formatted as written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(log.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def log_lines():
    """Checks every test's log output: no secret value (SecretKey, session token, callback
    token) may appear in any line, whatever path the test drove the function down."""
    collector = _LogLines()
    loggers = [logging.getLogger(log.LOGGER_NAME), logging.getLogger(log.SDK_LOGGER)]
    for logger in loggers:
        logger.addHandler(collector)
    yield collector.lines
    for logger in loggers:
        logger.removeHandler(collector)
    leaks = [line for line in collector.lines for secret in SECRETS if secret in line]
    assert not leaks, f"a secret reached the log: {leaks[:3]}"


@pytest.fixture
def emulator():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emu:
        emu.create_bucket(BUCKET, region=REGION)
        yield emu


def function_env(emulator: CosEmulator, **overrides: str) -> dict[str, str]:
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint,
           # The CI cross-check is on by default in production; tests about it opt in (test_ci_crosscheck.py).
           "CALLBACK_TOKEN": CALLBACK_TOKEN, "ALLOWED_BUCKETS": ALLOWED_BUCKETS, "VERIFY_WITH_CI": "false"}
    env.update(overrides)
    return env


@pytest.fixture
def make_app(emulator) -> Callable[..., App]:
    apps: list[App] = []

    def make(**env: str) -> App:
        app = App(Settings.from_env(function_env(emulator, **env)))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app) -> App:
    return make_app()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def http_event(body: bytes | str, content_type: str = "application/xml", method: str = "POST") -> dict[str, Any]:
    text = body.decode() if isinstance(body, bytes) else body
    return {"body": text, "headers": {"Content-Type": content_type}, "httpMethod": method, "path": "/",
            "queryString": {"token": CALLBACK_TOKEN}}


def invoke(app: App, event: dict[str, Any], context: dict[str, Any] | None = None,
           through_callback_url: bool = True) -> tuple[int, dict, dict]:
    """Run the function; return (status, parsed body, headers).

    By default the event arrives as CI sends it, to the callback URL, whose query string carries
    the token; `through_callback_url=False` delivers the event exactly as given."""
    if through_callback_url and isinstance(event.get("queryString", {}), dict):
        event = {**event, "queryString": {"token": CALLBACK_TOKEN, **(event.get("queryString") or {})}}
    result = app.handle(event, context or {"request_id": "test-request", "time_limit_in_ms": 30000})
    return result["statusCode"], json.loads(result["body"]), result["headers"]
