"""The jobs a tick has no time for, handed to workers: SCF's limits, a batch's size, how long a worker holds
its jobs, and the tick's pace and count of hand-offs (the Invoke itself is fanout.py's)."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from handlers import log
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.models import Job
from handlers.reconcile import checkpoint as cp
from handlers.reconcile.listing import ListRef
from handlers.reconcile.report import SweepReport

SCF_ASYNC_ATTEMPTS = 3  # an asynchronous invocation that fails is tried twice more (DESIGN: SCF retries)
SCF_RETRY_GAP = timedelta(minutes=1)  # about a minute apart
INVOKES_PER_SECOND = 50  # the Invoke API takes at most 100 a second for the account: half, for callbacks
MAX_BATCH = 1000  # job ids per worker: ~40 KB of the 128 KB an asynchronous event may carry
INVOKE_SECONDS = 2.0  # the least time left to hand a batch off (handlers/intake/dispatch.invoke_timeout: half of it)

# Hands jobs to an asynchronous invocation of this function: (list, job ids, until) -> its request id.
# Raises TransientError or StorageError when SCF does not take them.
HandOff = Callable[[ListRef, list[str], datetime], str]


def batch_size(rate: float, budget: float, reserve: float, closing: float) -> int:
    """Jobs a worker finishes in half its time (`budget`, less what it keeps for a job under way and for
    closing), as fast as this invocation checks them (`rate`: the same function, the same configuration)."""
    return max(1, min(MAX_BATCH, int(rate * (budget - reserve - closing) * 0.5)))


def worker_until(now: datetime, budget: float) -> datetime:
    """Until when a batch handed off `now` is the worker's: its time, and SCF's retries of it; then another
    tick takes the jobs back."""
    return now + SCF_ASYNC_ATTEMPTS * timedelta(seconds=budget) + (SCF_ASYNC_ATTEMPTS - 1) * SCF_RETRY_GAP


class Workers:
    """A tick's hand-offs, over all its lists: at most `max_workers` batches (none without `hand_off`),
    paced under SCF's Invoke limit."""

    def __init__(self, hand_off: HandOff | None, max_workers: int):
        self._hand_off = hand_off
        self.left = max_workers if hand_off is not None else 0
        self._last_invoke = 0.0

    def hand(self, ref: ListRef, batch: list[Job], deadline: Deadline, report: SweepReport,
             seen: cp.Observations) -> None:
        """Hand `batch` to a worker, and record it in `seen` as the worker's until its time runs out; with
        no worker left, no time left or SCF refusing, the jobs are left for the next tick."""
        hand_off = self._hand_off
        if hand_off is None or self.left <= 0 or deadline.remaining() < INVOKE_SECONDS:
            report.left_unchecked += len(batch)
            return
        pause = 1 / INVOKES_PER_SECOND - (time.monotonic() - self._last_invoke)
        if pause > 0:
            time.sleep(pause)
        until = worker_until(datetime.now(timezone.utc), deadline.budget or deadline.remaining())
        try:
            self._last_invoke = time.monotonic()
            invocation = hand_off(ref, [job.job_id for job in batch], until)
        except (TransientError, StorageError) as exc:
            report.errors.append(f"{ref.label()}: {len(batch)} jobs could not be handed to a worker: {exc}")
            report.left_unchecked += len(batch)
            return
        self.left -= 1
        report.workers += 1
        report.handed_off += len(batch)
        for job in batch:
            assert job.creation_time is not None
            seen.handed_off[job.job_id] = cp.HandOff(until, invocation)
        log.info("reconcile batch handed to a worker", invocation=invocation, jobs=len(batch),
                 queueId=ref.queue_id, tag=ref.tag, bucket=ref.bucket)
