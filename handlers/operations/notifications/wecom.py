"""WeCom group robot: a markdown message
(https://developer.work.weixin.qq.com/document/path/91770: `{"msgtype": "markdown", "markdown": {"content": ...}}`,
content at most 4096 bytes, which message.markdown keeps inside). The `key` in the URL is the credential:
nothing is signed, so `secret` is unused (config.py refuses NOTIFY_SECRET for WeCom alone)."""
from __future__ import annotations

import json

from handlers.operations.notifications.delivery import Request, json_headers
from handlers.operations.notifications.message import Notice, markdown


def request(notice: Notice, url: str, secret: str, now: float) -> Request:
    body = {"msgtype": "markdown", "markdown": {"content": markdown(notice)}}
    return Request(url, json_headers(), json.dumps(body, ensure_ascii=False).encode("utf-8"))
