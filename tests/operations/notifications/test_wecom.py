"""wecom.py: WeCom's markdown message as its robot takes it; a key and CI's Message reach it as text."""
from __future__ import annotations

from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke, md5
from tests.operations.notifications.conftest import JOB, mismatch_body
from tests.operations.notifications.markup import EVIL_KEY, EVIL_MESSAGE, assert_text_only, commonmark_text
from tests.samples import BUCKET, job_xml


def test_wecom_gets_a_markdown_message(emulator, make_app):
    with WebhookReceiver(kind="wecom") as robot:
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=wecom-robot-key-123"), NOTIFY_FORMAT="wecom",
                       ACTION_FAILED="move")
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
        (message,) = robot.requests
    body = message.json()
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert JOB in content and "VoiceSeparate" in content and BUCKET in content
    assert "- **mismatch**: out/bad.mp3 (" in content and "moved to quarantine/out/bad.mp3" in content
    assert "out/voice.mp3" not in content and "Request id: test-request" in content
    assert message.query == {"key": "wecom-robot-key-123"} and len(content.encode()) <= 4096


def test_a_key_and_cis_message_reach_wecom_as_text(emulator, make_app):
    """Red-team finding: a backtick in a key closed the code span it was put in, and the link after
    it was live in the team's chat; CI's Message went out as it was, newlines and all."""
    from xml.sax.saxutils import escape
    emulator.put_object(BUCKET, EVIL_KEY, b"corrupt")
    mismatch = job_xml(md5s={escape(EVIL_KEY): md5(b"expected")}, names=[])
    failed = job_xml(md5s=None, names=[], state="Failed", code="InternalError", message=escape(EVIL_MESSAGE),
                     job_id="j0000000000000000000000000000002")
    with WebhookReceiver(kind="wecom") as robot:
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=k"), NOTIFY_FORMAT="wecom", ACTION_FAILED="move")
        assert invoke(app, http_event(mismatch))[0] == 200
        assert invoke(app, http_event(failed))[0] == 200
        first, second = (m.json()["markdown"]["content"] for m in robot.requests)
    assert emulator.object_bytes(BUCKET, "quarantine/" + EVIL_KEY) == b"corrupt"
    # heading, job, bucket, blank, the object, blank, request id
    assert_text_only(first, expected_lines=7)
    (object_line,) = [line for line in first.split("\n") if line.startswith("- ")]
    assert EVIL_KEY in commonmark_text(object_line) and "quarantine/" + EVIL_KEY in commonmark_text(object_line)
    # heading, job, bucket, CI says, blank, blank, request id
    assert_text_only(second, expected_lines=7)
    (ci_says,) = [line for line in second.split("\n") if "CI says" in line]
    shown = commonmark_text(ci_says)
    assert "voice model crashed # Heading > quote - item 1. first" in shown and "[re-run](https://evil.example/)" in shown
