"""formats.py: a robot that answers 200 with an error code refused the message."""
from __future__ import annotations

import json

from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke
from tests.operations.notifications.conftest import job_lines, mismatch_body


def test_a_robot_that_refuses_with_an_error_code_is_a_failure(emulator, make_app, log_lines):
    with WebhookReceiver(kind="wecom") as robot:
        robot.answer(body=b'{"errcode":93000,"errmsg":"invalid webhook url"}')
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=k1234567"), NOTIFY_FORMAT="wecom")
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
    failure = next(e for e in map(json.loads, log_lines) if e["message"] == "notification failed")
    assert "93000" in failure["reason"] and job_lines(log_lines)[0]["notificationsFailed"] == 1
