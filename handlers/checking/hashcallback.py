"""A FileHashCode job's callback (VERIFY_MODE=server): believed only as CI reports the job, it completes the
verdict of the object the job's UserData names (checking/ticket.py), through the same check and actions."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial

from handlers.checking.outcome import outcome_of
from handlers.checking.ticket import PREFIX, decode
from handlers.ci.confirm import CiUnavailable, JobNotConfirmed
from handlers.ci.filehash import HASH_TAG, CiHashing, FileJob
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.http import HttpError
from handlers.intake.models import Callback, Job, JobResult, ObjectResult, OutputObject
from handlers.intake.nodes import MalformedCallback


def is_hash_callback(job: Job) -> bool:
    """A FileHashCode job whose callback claims to carry this function's UserData (CI is asked before
    anything is trusted)."""
    return job.tag == HASH_TAG and job.operation is not None and job.operation.user_data.startswith(PREFIX + "|")


RunOne = Callable[[Job, OutputObject, Deadline, FileJob], ObjectResult]


def finish(callback: Callback, hashing: CiHashing, run_one: RunOne, settings: Settings,
           deadline: Deadline) -> tuple[list[JobResult], Callback]:
    """The results of the callback's FileHashCode jobs, and the callback without them.

    Raises JobNotConfirmed (403) for a job CI does not know or whose account contradicts itself, CiUnavailable
    (503), MalformedCallback (400) for a job that names no bucket to ask."""
    results: list[JobResult] = []
    for claimed in (job for job in callback.jobs_detail if is_hash_callback(job)):
        where = claimed.input
        if where is None or not where.bucket_id or not where.region:
            raise MalformedCallback(f"FileHashCode job {claimed.job_id}: no Input BucketId and Region to ask CI in")
        try:
            reported = retrying(partial(hashing.describe, where.bucket_id, where.region, claimed.job_id, deadline),
                                deadline)
        except (TransientError, StorageError) as exc:
            raise CiUnavailable(f"CI's file-job API did not answer: {exc}") from None
        if reported is None:
            raise JobNotConfirmed(f"FileHashCode job {claimed.job_id} is unknown to CI")
        ticket = decode(reported.user_data)
        if ticket is None:
            results.append(JobResult(claimed, outcome_of(claimed, ()), ()))  # not ours after all: acknowledged
            continue
        if not (ticket.bucket == reported.bucket == where.bucket_id) or not ticket.names(reported.key):
            raise JobNotConfirmed(f"FileHashCode job {claimed.job_id}: CI's job hashes {reported.bucket}/"
                                  f"{reported.key}, not the object its UserData names")
        original = Job(job_id=ticket.job_id, tag=ticket.tag, state="Success", input=claimed.input,
                       end_time=None if ticket.job_end is None else datetime.fromtimestamp(ticket.job_end,
                                                                                          timezone.utc))
        target = OutputObject(reported.bucket, reported.region or where.region, reported.key, ticket.expected_md5)
        if settings.allowed_prefixes and not target.key.startswith(settings.allowed_prefixes):
            raise HttpError(403, f"FileHashCode job {claimed.job_id}: key {target.key!r} is not under ALLOWED_PREFIXES")
        done = run_one(original, target, deadline, reported)
        results.append(JobResult(original, outcome_of(original, (done,)), (done,), partial=True))
    rest = tuple(job for job in callback.jobs_detail if not is_hash_callback(job))
    return results, Callback(callback.event_name, rest, callback.workflow_execution)
