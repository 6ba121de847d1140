"""Fixtures: a fresh COS emulator per test and the function configured against it."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

import pytest

from handlers.app import App
from handlers.config import Settings
from localcloud.cos import CosEmulator
from tests.samples import BUCKET, REGION

SECRET_ID = "AKIDtestid0000000000000000000000"
SECRET_KEY = "test-secret-key-0000000000000000"
TOKEN = "test-session-token"


@pytest.fixture
def emulator():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emu:
        emu.create_bucket(BUCKET, region=REGION)
        yield emu


def function_env(emulator: CosEmulator, **overrides: str) -> dict[str, str]:
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint}
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
            "queryString": {}}


def invoke(app: App, event: dict[str, Any], context: dict[str, Any] | None = None) -> tuple[int, dict, dict]:
    """Run the function; return (status, parsed body, headers)."""
    result = app.handle(event, context or {"request_id": "test-request", "time_limit_in_ms": 30000})
    return result["statusCode"], json.loads(result["body"]), result["headers"]
