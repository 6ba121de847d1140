"""Standard Webhooks (NOTIFY_FORMAT=json, and any URL that is no known robot's)
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
headers `webhook-id`, `webhook-timestamp` (unix seconds), `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` keyed with the bytes of `whsec_<base64>`; the body is `{"type", "timestamp", "data"}`.
The id is message.message_id: derived from the job and the problems the message announces, so it stays
the same across retries and replays, and a receiver that keeps the ids it saw drops any duplicate."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from handlers.config import webhook_key
from handlers.operations.notifications.delivery import Request, json_headers
from handlers.operations.notifications.message import Notice, message_id

EVENT_TYPE = "ci.verification"


def request(notice: Notice, url: str, secret: str, now: float) -> Request:
    data = json.dumps(event_payload(notice, now), ensure_ascii=False, separators=(",", ":")).encode()
    webhook_id, stamp = message_id(notice), int(now)
    headers = json_headers()
    headers.update({"webhook-id": webhook_id, "webhook-timestamp": str(stamp),
                    "webhook-signature": standard_webhooks_signature(secret, webhook_id, stamp, data)})
    return Request(url, headers, data)


def event_payload(notice: Notice, occurred: float) -> dict[str, Any]:
    """The Standard Webhooks body: type, timestamp, data."""
    return {
        "type": f"{EVENT_TYPE}.{notice.outcome}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred)),
        "data": {
            "jobId": notice.job_id, "tag": notice.job_type, "state": notice.state, "outcome": notice.outcome,
            "bucket": notice.bucket, "region": notice.region,
            **({"code": notice.code, "message": notice.message} if notice.code or notice.message else {}),
            "counts": dict(notice.counts),
            "objects": [{"key": o.key, "verdict": o.verdict, "reason": o.reason,
                         **({"movedTo": o.moved_to} if o.moved_to else {})} for o in notice.objects],
            "requestId": notice.request_id,
        },
    }


def standard_webhooks_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(webhook_key(secret), signed, hashlib.sha256).digest()).decode()
