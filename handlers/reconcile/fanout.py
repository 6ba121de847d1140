"""Handing the sweep's jobs to asynchronous invocations of this function (SCF `Invoke`, `Event`).

The Dispatcher (handlers/intake/dispatch.py) signs and sends the Invoke as it does for DISPATCH=async;
this only builds the event and bounds the wait. SCF's limits (DESIGN.md, SCF section): an
asynchronous event carries at most 128 KB (a batch is job ids only: about 40 bytes each), the
Invoke API takes at most 100 requests a second for the account (the sweep paces itself at half),
and the account's concurrency bounds the workers (RECONCILE_WORKERS per tick).
"""
from __future__ import annotations

from datetime import datetime, timezone

from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.dispatch import Dispatcher, FunctionRef, fits_async, invoke_timeout
from handlers.intake.events import reconcile_payload
from handlers.reconcile.handoff import HandOff
from handlers.reconcile.listing import CI_TIME, ListRef


def hand_off_with(dispatcher: Dispatcher, function: FunctionRef, deadline: Deadline, attempt_limit: float,
                  request_id: str) -> HandOff:
    def hand_off(ref: ListRef, job_ids: list[str], until: datetime) -> str:
        payload = reconcile_payload(ref.bucket, ref.region, ref.queue_id, ref.tag, job_ids,
                                    until.astimezone(timezone.utc).strftime(CI_TIME), request_id)
        if not fits_async(payload):
            raise StorageError(f"{len(job_ids)} job ids exceed SCF's 128 KB for an asynchronous event")
        timeout = invoke_timeout(deadline.remaining(), attempt_limit)
        if timeout is None:
            raise TransientError("no time was left to ask SCF")
        return dispatcher.invoke(function, payload, timeout)
    return hand_off
