"""webhooks.py: the Standard Webhooks event and its signature, as the receiver checks them."""
from __future__ import annotations

import base64
import time

from localcloud.webhook import verify_standard_webhook
from tests.conftest import http_event, invoke
from tests.operations.notifications.conftest import JOB, SECRET, job_lines, mismatch_body, notify_env
from tests.samples import BUCKET, REGION, job_xml


def test_a_mismatch_sends_one_signed_standard_webhook(emulator, receiver, make_app, log_lines):
    app = make_app(**notify_env(receiver), ACTION_FAILED="tag,move")
    status, answer, _ = invoke(app, http_event(mismatch_body(emulator)))
    assert status == 200 and answer["jobs"][0]["outcome"] == "failed"
    (message,) = receiver.requests
    assert message.signature == "valid"  # checked by the receiver, from the specification
    assert message.headers["webhook-id"].startswith("msg_") and message.headers["content-type"].startswith(
        "application/json")
    event = message.json()
    assert event["type"] == "ci.verification.failed" and event["timestamp"].endswith("Z")
    data = event["data"]
    assert data["jobId"] == JOB and data["tag"] == "VoiceSeparate" and data["bucket"] == BUCKET
    assert data["region"] == REGION and data["requestId"] == "test-request"
    assert data["counts"] == {"verified": 1, "mismatch": 1}
    (bad,) = data["objects"]  # the affected object only, not the verified one
    assert bad["key"] == "out/bad.mp3" and bad["verdict"] == "mismatch" and bad["reason"]
    assert bad["movedTo"] == "quarantine/out/bad.mp3"
    assert emulator.object_bytes(BUCKET, "quarantine/out/bad.mp3") == b"corrupt"
    (job,) = job_lines(log_lines)
    assert job["notification"] == "sent" and job["notificationsSent"] == 1 and job["notificationsFailed"] == 0


def test_a_tampered_body_fails_the_receivers_check(receiver):
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
               "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    assert verify_standard_webhook(SECRET, headers, b"{}") == "no v1 signature matches"


def test_a_failed_job_says_what_ci_said(receiver, make_app):
    body = job_xml(md5s=None, names=[], state="Failed", code="InternalError", message="voice model crashed")
    invoke(make_app(**notify_env(receiver)), http_event(body))
    (message,) = receiver.requests
    data = message.json()["data"]
    assert message.json()["type"] == "ci.verification.failed-job"
    assert data["code"] == "InternalError" and data["message"] == "voice model crashed" and data["objects"] == []
