"""DingTalk custom robot: a markdown message
(https://open.dingtalk.com/document/robots/custom-robot-access: `{"msgtype": "markdown", "markdown":
{"title", "text"}}`), with the optional signing secret
(https://open.dingtalk.com/document/robots/customize-robot-security-settings: `timestamp` in
milliseconds and `sign` = urlencode(base64(HMAC-SHA256(key=secret, "timestamp\\nsecret"))) as query
parameters)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping

from handlers.operations.notifications.delivery import Request, json_headers
from handlers.operations.notifications.message import Notice, headline, markdown


def request(notice: Notice, url: str, secret: str, now: float) -> Request:
    body = {"msgtype": "markdown", "markdown": {"title": headline(notice)[:64], "text": markdown(notice)}}
    if secret:
        stamp = int(now * 1000)
        url = _with_query(url, {"timestamp": str(stamp), "sign": dingtalk_sign(secret, stamp)})
    return Request(url, json_headers(), json.dumps(body, ensure_ascii=False).encode("utf-8"))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256 keyed with the secret, of "timestamp\\nsecret"), before url-encoding."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(extra)) if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))
