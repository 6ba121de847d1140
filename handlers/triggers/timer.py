"""The timer's tick: the reconciliation sweep finds jobs whose callback never arrived (or
whose outputs still need a verdict) and sends each through the pipeline."""
from __future__ import annotations

import time
from typing import Any

from handlers import log
from handlers.auth import check_allowed
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
    from handlers.sweep import Sweep  # only the timer needs it

    def verify_job(callback: Callback, job_deadline: Deadline) -> list[JobResult]:
        try:
            check_allowed(callback, settings)
        except HttpError as exc:
            log.warning("sweep skipped a job outside the allow-lists", reason=exc.reason)
            return []
        return pipeline.run(callback, job_deadline, request_id, time.time())[0]

    sweep = Sweep(settings, verify_job, pipeline.ci_jobs.bound(deadline), pipeline.store.bound(deadline))
    swept = sweep.run(deadline)
    report = swept.as_dict()
    troubled = bool(swept.errors or swept.unreadable or report["tooLarge"]) or needs_retry(swept.checked)
    log.at(log.WARNING if troubled else log.INFO, "reconciliation sweep finished", **report)
    return {"sweep": report}
