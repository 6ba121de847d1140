"""The formats NOTIFY_FORMAT names (config.py's NOTIFY_FORMATS, and notify_format_of for the robots' hosts),
each vendor's module that builds its request, and how each tells a refusal it answered 2xx to."""
from __future__ import annotations

import json
from collections.abc import Callable

from handlers.operations.notifications import dingtalk, feishu, webhooks, wecom
from handlers.operations.notifications.delivery import Request
from handlers.operations.notifications.message import Notice

Build = Callable[[Notice, str, str, float], Request]  # (notice, url, secret, now) -> the request (pure)

BUILDERS: dict[str, Build] = {"wecom": wecom.request, "dingtalk": dingtalk.request, "feishu": feishu.request,
                              "json": webhooks.request}


def build_request(notice: Notice, url: str, fmt: str, secret: str, now: float) -> Request:
    """The HTTP request that delivers `notice` to `url` in format `fmt` (pure: `now` is given)."""
    return BUILDERS.get(fmt, webhooks.request)(notice, url, secret, now)


def robot_refusal(fmt: str, body: bytes) -> str:
    """Why a robot refused a message it answered 200 to ('' when it took it): WeCom and DingTalk
    answer `errcode`, Feishu `code`, 0 meaning success."""
    if fmt == "json":
        return ""
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
    if code in (0, "0", None):
        return ""
    return f"the robot answered code {code}: {answer.get('errmsg') or answer.get('msg') or ''}".rstrip(": ")
