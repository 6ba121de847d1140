"""feishu.py: Feishu's post message and the signature in its body, as the receiver checks them."""
from __future__ import annotations

import dataclasses
import json

from handlers.operations.notifications import feishu
from handlers.operations.notifications.message import AffectedObject
from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke
from tests.operations.notifications.conftest import JOB, mismatch_body
from tests.operations.notifications.markup import evil_notice


def test_feishu_gets_a_post_with_its_signature_in_the_body(emulator, make_app):
    secret = "feishu-signing-secret-0123"
    with WebhookReceiver(secret=secret, kind="feishu") as robot:
        robot.answer(body=b'{"code":0,"msg":"success","data":{}}')
        app = make_app(NOTIFY_URL=robot.url("/open-apis/bot/v2/hook/feishu-hook-id"), NOTIFY_FORMAT="feishu",
                       NOTIFY_SECRET=secret)
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
        (message,) = robot.requests
    assert message.signature == "valid"
    body = message.json()
    assert body["msg_type"] == "post" and body["timestamp"].isdigit() and body["sign"]
    post = body["content"]["post"]["zh_cn"]
    text = "\n".join(part["text"] for row in post["content"] for part in row)
    assert JOB in post["title"] and "out/bad.mp3: mismatch" in text and "Request id: test-request" in text


def test_a_feishu_post_holds_only_text_elements_one_line_each():
    """Feishu's `text` element is shown as it is; the rows are built as objects, so a key that
    looks like JSON (closing the element, opening a link element) is only text."""
    key = 'out/"}],[{"tag":"a","href":"https://evil.example/","text":"open"}],[{"tag":"at","user_id":"all"}].mp3'
    notice = dataclasses.replace(evil_notice(), objects=(AffectedObject(key, "mismatch", "r\n[x](y)", ""),))
    body = json.loads(feishu.request(notice, "https://open.feishu.cn/open-apis/bot/v2/hook/h", "", 0.0).body)
    post = body["content"]["post"]["zh_cn"]
    assert "\n" not in post["title"]
    assert all(len(row) == 1 and set(row[0]) == {"tag", "text"} and row[0]["tag"] == "text" for row in post["content"])
    texts = [row[0]["text"] for row in post["content"]]
    assert all("\n" not in t and "\r" not in t for t in texts)
    assert f"{key}: mismatch (r [x](y))" in texts and any("voice model crashed # Heading" in t for t in texts)
