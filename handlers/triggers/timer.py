"""The timer's tick: the reconciliation sweep finds jobs whose callback never arrived (or
whose outputs still need a verdict) and sends each through the pipeline."""
from __future__ import annotations

import time
from typing import Any

from handlers import log
from handlers.auth import check_allowed
from handlers.callback import MalformedCallback
from handlers.ci import CiUnavailable, JobNotConfirmed
from handlers.deadline import Deadline
from handlers.http import HttpError
from handlers.models import Callback, JobResult
from handlers.pipeline import Pipeline
from handlers.report import needs_retry


def handle(pipeline: Pipeline, deadline: Deadline, request_id: str) -> dict[str, Any]:
    settings = pipeline.settings
    if not settings.reconcile_buckets:
        log.warning("timer tick, but no bucket to reconcile: set RECONCILE_BUCKETS (or ALLOWED_BUCKETS "
                    "and DEFAULT_REGION)")
        return {"sweep": "nothing to reconcile"}
    from handlers.reconcile.sweep import JobNotChecked, Sweep  # only the timer needs it

    def verify_job(callback: Callback, job_deadline: Deadline) -> tuple[list[JobResult], list[str]]:
        try:
            check_allowed(callback, settings)
        except HttpError as exc:
            log.warning("sweep skipped a job outside the allow-lists", reason=exc.reason)
            return [], []
        try:
            return pipeline.run(callback, job_deadline, request_id, time.time())
        except (MalformedCallback, JobNotConfirmed, CiUnavailable) as exc:
            raise JobNotChecked(str(exc)) from None
        except HttpError as exc:  # CI's account of the job names a bucket not allowed
            raise JobNotChecked(exc.reason) from None

    sweep = Sweep(settings, verify_job, pipeline.ci_jobs.bound(deadline), pipeline.store.bound(deadline))
    swept = sweep.run(deadline)
    report = swept.as_dict()
    troubled = bool(swept.errors or swept.unreadable or report["tooLarge"]) or needs_retry(swept.checked)
    log.at(log.WARNING if troubled else log.INFO, "reconciliation sweep finished", **report)
    return {"sweep": report}
