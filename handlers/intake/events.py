"""What kind of invocation this is: the one entry point serves every trigger.

- HTTP (Function URL, or the API Gateway shape): a callback posted by CI.
- Worker: an asynchronous invocation this function made of itself: a callback to process (DISPATCH=async),
  a batch of jobs the sweep hands off (`reconcile`), or a backfill (`backfill`, which an operator may send).
- Queue: a CMQ topic trigger batch; each message body is a callback (CI calls the delivery CallBackType=TDMQ).
- Timer: the reconciliation sweep's tick.
"""
from __future__ import annotations

import enum
from typing import Any

WORKER_KEY = "ciCallbackVerifier"  # marks a payload this function sent itself


class Kind(str, enum.Enum):
    HTTP = "http"
    WORKER = "worker"
    QUEUE = "queue"
    TIMER = "timer"
    UNKNOWN = "unknown"


def kind_of(event: Any) -> Kind:
    if not isinstance(event, dict):
        return Kind.UNKNOWN
    if "httpMethod" in event:
        return Kind.HTTP
    if isinstance(event.get(WORKER_KEY), dict):
        return Kind.WORKER
    records = event.get("Records")
    if isinstance(records, list) and records and all(isinstance(r, dict) and "CMQ" in r for r in records):
        return Kind.QUEUE
    if event.get("Type") == "Timer" or ("TriggerName" in event and "Time" in event):
        return Kind.TIMER
    return Kind.UNKNOWN


def worker_payload(body: bytes, request_id: str) -> dict[str, Any]:
    """What the HTTP path hands to its asynchronous twin: the raw callback, nothing decided."""
    return {WORKER_KEY: {"version": 1, "body": body.decode("utf-8"), "receivedBy": request_id}}


def reconcile_payload(bucket: str, region: str, queue_id: str, tag: str, job_ids: list[str], until: str,
                      request_id: str) -> dict[str, Any]:
    """What the sweep hands a worker: job ids only. The worker reads the jobs back from CI, so what
    it verifies is CI's account, whoever sent the event."""
    return {WORKER_KEY: {"version": 1, "reconcile": {
        "bucket": bucket, "region": region, "queueId": queue_id, "tag": tag, "jobIds": job_ids, "until": until,
        "handedOffBy": request_id}}}


def queue_bodies(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(message id, callback body) for each CMQ record."""
    messages = []
    for record in event["Records"]:
        cmq = record.get("CMQ") or {}
        body = cmq.get("msgBody")
        messages.append((str(cmq.get("msgId", "")), body.encode("utf-8") if isinstance(body, str) else b""))
    return messages
