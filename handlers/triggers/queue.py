"""A CMQ topic trigger batch (CI's CallBackType=TDMQ): each message body is a callback. SCF has
no per-message acknowledgement, so one message that needs another try sends back the batch."""
from __future__ import annotations

from typing import Any

from handlers.deadline import Deadline
from handlers.intake.events import queue_bodies
from handlers.operations.answer import job_entry
from handlers.pipeline import Pipeline, Refused, RetryLater


def handle(pipeline: Pipeline, event: dict[str, Any], deadline: Deadline, request_id: str) -> dict[str, Any]:
    outcomes, retry = [], []
    for message_id, body in queue_bodies(event):
        try:
            results = pipeline.run_quietly(body, deadline, request_id)
            outcomes.append({"msgId": message_id, "jobs": [job_entry(r) for r in results]})
        except Refused as exc:
            outcomes.append({"msgId": message_id, "refused": str(exc)})
        except RetryLater as exc:
            retry.append(f"{message_id}: {exc}")
    if retry:
        # The whole batch comes back; the messages already done are idempotent replays.
        raise RetryLater("messages to deliver again: " + "; ".join(retry))
    return {"messages": outcomes}
