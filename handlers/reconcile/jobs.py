"""How the sweep and its workers run a job CI listed or read back: the one pipeline, as CI's own account."""
from __future__ import annotations

import time

from handlers.ci.confirm import CiUnavailable, JobNotConfirmed
from handlers.config import Settings
from handlers.deadline import Deadline
from handlers.intake.auth import check_allowed
from handlers.intake.callback import MalformedCallback
from handlers.intake.http import HttpError
from handlers.intake.models import Callback, Job, JobResult
from handlers.pipeline import Pipeline
from handlers.reconcile.checks import JobNotChecked, JobRunner, JobSkipped


def job_runner(pipeline: Pipeline, request_id: str) -> JobRunner:
    def run(job: Job, deadline: Deadline) -> tuple[list[JobResult], list[str]]:
        try:
            # The job is what CI's API answered: asking CI again would prove nothing more.
            return pipeline.run(Callback("TaskFinish", (job,)), deadline, request_id, time.time(), from_ci=True)
        except HttpError as exc:  # CI's account of the job names a bucket not allowed
            raise JobSkipped(exc.reason) from None
        except (MalformedCallback, JobNotConfirmed, CiUnavailable) as exc:
            raise JobNotChecked(str(exc)) from None
    return run


def outside_allow_lists(settings: Settings, job: Job) -> str | None:
    """Why the function must not act on the job (ALLOWED_BUCKETS, ALLOWED_PREFIXES), or None."""
    try:
        check_allowed(Callback("TaskFinish", (job,)), settings)
    except HttpError as exc:
        return exc.reason
    return None
