"""delivery.py: retried on 5xx with the same webhook-id, bounded by the invocation's deadline however
the receiver holds its answer, the answer decoded before it is judged."""
from __future__ import annotations

import json
import time

import pytest

from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke
from tests.operations.notifications.conftest import app_invoke, job_lines, mismatch_body, notify_env
from tests.samples import BUCKET


def test_a_5xx_is_retried_with_the_same_webhook_id(emulator, receiver, make_app, log_lines):
    receiver.answer(503, 502)
    app = make_app(**notify_env(receiver))
    assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
    assert len(receiver.requests) == 3 and len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert all(r.signature == "valid" for r in receiver.requests)
    assert job_lines(log_lines)[0]["notification"] == "sent"


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", [
    {"hang": True},
    # requests' timeout bounds each socket read, not the exchange: an answer that comes a byte at a
    # time (a slow proxy) never trips it (red-team finding: 39 s in a 4 s invocation).
    {"body": b'{"errcode":0,"errmsg":"ok"}', "trickle": 0.5},  # 27 bytes: 13 s
], ids=["never-answers", "trickles-its-answer"])
def test_a_receiver_that_holds_its_answer_costs_no_more_than_the_deadline(emulator, receiver, make_app, log_lines,
                                                                          behaviour):
    receiver.answer(**behaviour)
    app = make_app(**notify_env(receiver))
    body = mismatch_body(emulator)
    started = time.monotonic()
    status, answer, _ = app_invoke(app, body, time_limit_ms=4000)
    assert time.monotonic() - started < 4.0  # SCF would have cut the invocation there
    assert status == 200 and answer["jobs"][0]["objects"][1]["verdict"] == "mismatch"
    failures = [e for e in map(json.loads, log_lines) if e["message"] == "notification failed"]
    assert failures and failures[0]["level"] == "ERROR"
    (job,) = job_lines(log_lines)
    assert job["notification"] == "failed" and job["notificationsFailed"] == 1
    assert emulator.keys(BUCKET, ".ci-callback-verifier/") == []  # not remembered: a replay tries again
    receiver.answer()
    assert invoke(app, http_event(body))[0] == 200
    assert job_lines(log_lines)[-1]["notification"] == "sent"


def test_a_refusal_sent_gzip_encoded_is_still_a_refusal(emulator, make_app, log_lines):
    """requests offers gzip; the answer is read as it came, so it must be decoded before it is
    judged (red-team finding: a compressed errcode read as no refusal, the message marked sent)."""
    with WebhookReceiver(kind="wecom") as robot:
        robot.answer(body=b'{"errcode":93000,"errmsg":"invalid webhook url"}', gzip=True)
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=k"), NOTIFY_FORMAT="wecom")
        status, _, _ = app_invoke(app, mismatch_body(emulator), time_limit_ms=10000)
    assert status == 200
    failures = [e for e in map(json.loads, log_lines) if e["message"] == "notification failed"]
    assert failures and "93000" in failures[0]["reason"]
    assert emulator.keys(BUCKET, ".ci-callback-verifier/") == []
