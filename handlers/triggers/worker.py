"""An asynchronous invocation this function made of itself: a callback (DISPATCH=async), or a batch
of jobs the sweep handed off (`reconcile`). Nobody waits on the answer, so a transient failure
raises RetryLater and SCF delivers the event again."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.deadline import Deadline
from handlers.pipeline import Pipeline, Refused
from handlers.report import job_entry


def handle(pipeline: Pipeline, payload: Mapping[str, Any], deadline: Deadline, request_id: str) -> dict[str, Any]:
    reconcile = payload.get("reconcile")
    if isinstance(reconcile, Mapping):
        from handlers.reconcile.worker import handle as reconcile_batch
        return reconcile_batch(pipeline, reconcile, deadline, request_id)
    body = payload.get("body")
    if not isinstance(body, str):
        log.warning("worker payload without a callback body: dropped")
        return {"refused": "no callback body"}
    try:
        results = pipeline.run_quietly(body.encode("utf-8"), deadline, request_id)
    except Refused as exc:
        return {"refused": str(exc)}
    return {"jobs": [job_entry(r) for r in results]}
