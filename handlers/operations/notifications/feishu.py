"""Feishu/Lark custom bot: a rich-text `post` message, each line a `text` element (shown as it is),
with its signature (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot: `timestamp` in
seconds and `sign` = base64(HMAC-SHA256(key="timestamp\\nsecret", message="")) in the body; body ≤ 20 KB)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from handlers.operations.notifications.delivery import Request, json_headers
from handlers.operations.notifications.message import Notice, headline, plain_lines


def request(notice: Notice, url: str, secret: str, now: float) -> Request:
    # The rows are built as objects, so a key that looks like JSON (closing the element) is only text.
    rows = [[{"tag": "text", "text": line}] for line in plain_lines(notice)]
    body: dict[str, Any] = {"msg_type": "post",
                            "content": {"post": {"zh_cn": {"title": headline(notice), "content": rows}}}}
    if secret:
        stamp = int(now)
        body = {"timestamp": str(stamp), "sign": feishu_sign(secret, stamp), **body}
    return Request(url, json_headers(), json.dumps(body, ensure_ascii=False).encode("utf-8"))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256 keyed with "timestamp\\nsecret", of an empty message)."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()
