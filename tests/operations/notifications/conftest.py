"""What the notification tests share: a Standard Webhooks receiver, a job with a mismatch, the environment
that sends to the receiver, the `job processed` lines, and the job as CI's job API reports it."""
from __future__ import annotations

import base64
import json

import pytest
import xmltodict

from handlers.app import App
from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, job_xml

SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
JOB = "j0000000000000000000000000000001"


@pytest.fixture
def posted(emulator):
    """The FileHashCode callbacks CI would post (VERIFY_MODE=server), held for the test to deliver."""
    held: list = []
    emulator.callback_sink = held.append
    return held


@pytest.fixture
def receiver():
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


def mismatch_body(emulator) -> bytes:
    emulator.put_object(BUCKET, "out/voice.mp3", b"voice")
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    return job_xml(md5s={"out/voice.mp3": md5(b"voice"), "out/bad.mp3": md5(b"expected")}, names=[])


def notify_env(receiver, **extra: str) -> dict[str, str]:
    return {"NOTIFY_URL": receiver.url(), "NOTIFY_SECRET": SECRET, **extra}


def job_lines(log_lines: list[str]) -> list[dict]:
    return [e for e in map(json.loads, log_lines) if e["message"] == "job processed"]


def app_invoke(app: App, body: bytes, time_limit_ms: int) -> tuple[int, dict, dict]:
    return invoke(app, http_event(body), {"request_id": "test-request", "time_limit_in_ms": time_limit_ms})


def register(emulator, body: bytes) -> None:
    detail = xmltodict.parse(body)["Response"]["JobsDetail"]
    emulator.register_job(detail["Input"]["BucketId"], detail)


def messages(receiver) -> list[dict]:
    return [json.loads(r.body)["data"] for r in receiver.requests]
