"""dingtalk.py: DingTalk's markdown message and its signature, as the receiver checks them."""
from __future__ import annotations

import json

from handlers.operations.notifications import dingtalk
from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke
from tests.operations.notifications.conftest import JOB, mismatch_body
from tests.operations.notifications.markup import assert_text_only, evil_notice


def test_dingtalk_gets_markdown_and_a_valid_sign(emulator, make_app, log_lines):
    secret = "SECdingtalk-signing-secret-0123456789"
    with WebhookReceiver(secret=secret, kind="dingtalk") as robot:
        app = make_app(NOTIFY_URL=robot.url("/robot/send?access_token=dingtalk-token-123"), NOTIFY_FORMAT="dingtalk",
                       NOTIFY_SECRET=secret)
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
        (message,) = robot.requests
    assert message.signature == "valid"
    assert message.query["access_token"] == "dingtalk-token-123" and set(message.query) == {
        "access_token", "timestamp", "sign"}
    body = message.json()
    assert body["msgtype"] == "markdown" and JOB in body["markdown"]["title"]
    assert "**mismatch**" in body["markdown"]["text"]
    assert not [line for line in log_lines if secret in line or "dingtalk-token-123" in line]


def test_a_dingtalk_message_has_a_plain_one_line_title_and_text_only_markdown():
    request = dingtalk.request(evil_notice(), "https://oapi.dingtalk.com/robot/send?access_token=t", "", 0.0)
    body = json.loads(request.body)
    assert "\n" not in body["markdown"]["title"] and body["markdown"]["title"].startswith("CI outputs of job j1`[x]")
    # heading, job, bucket, CI says, blank, the object, blank, request id
    assert_text_only(body["markdown"]["text"], expected_lines=8)
