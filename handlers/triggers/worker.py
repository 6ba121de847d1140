"""An asynchronous invocation this function made of itself: a callback (DISPATCH=async), a batch
of jobs the sweep handed off (`reconcile`), or a round of a backfill (`backfill`, which an operator
may send too). Nobody waits on the answer, so a transient failure raises RetryLater and SCF
delivers the event again."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.deadline import Deadline
from handlers.intake.dispatch import Dispatcher
from handlers.operations.answer import job_entry
from handlers.pipeline import Pipeline, Refused


def handle(pipeline: Pipeline, payload: Mapping[str, Any], deadline: Deadline, request_id: str,
           context: Mapping[str, Any] | None = None, dispatcher: Dispatcher | None = None) -> dict[str, Any]:
    reconcile = payload.get("reconcile")
    if isinstance(reconcile, Mapping):
        from handlers.reconcile.worker import handle as reconcile_batch
        return reconcile_batch(pipeline, reconcile, deadline, request_id)
    backfill = payload.get("backfill")
    if isinstance(backfill, Mapping):
        from handlers.reconcile.backfill import handle_event
        return handle_event(pipeline, backfill, deadline, request_id, context, dispatcher)
    body = payload.get("body")
    if not isinstance(body, str):
        log.warning("worker payload without a callback body: dropped")
        return {"refused": "no callback body"}
    try:
        results = pipeline.run_quietly(body.encode("utf-8"), deadline, request_id)
    except Refused as exc:
        return {"refused": str(exc)}
    return {"jobs": [job_entry(r) for r in results]}
