"""A batch of jobs the sweep handed off: read them back from CI, check those not settled yet.

The event names job ids only (handlers/intake/events.reconcile_payload). They are read back from CI ten at
a time (DescribeMediaJob's most), so what gets verified is CI's account whoever sent the event, and
only in a bucket the sweep covers. It reports back through the settled markers each job's pipeline
writes: the next tick finds them with one HEAD each. A job left (no time, a check to try again)
makes the invocation raise RetryLater, so SCF runs the batch again; the jobs settled meanwhile cost
one HEAD each then.
"""
from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handlers import log
from handlers.ci.confirm import CiUnavailable, describe_jobs
from handlers.config import ANY_BUCKET, Settings
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.models import Job
from handlers.operations.settled import needs_no_marker, settled_now
from handlers.pipeline import Pipeline, Refused, RetryLater
from handlers.reconcile.checks import Checker
from handlers.reconcile.handoff import MAX_BATCH
from handlers.reconcile.jobs import job_runner, outside_allow_lists
from handlers.reconcile.report import EXAMPLES
from handlers.storage.records import state_prefix


def order_of(payload: Mapping[str, Any], settings: Settings) -> tuple[str, str, list[str]]:
    """(bucket, region, job ids) of a well-formed batch for a bucket the sweep covers or the allow-list
    names (a backfill's); Refused otherwise."""
    bucket, region, ids = payload.get("bucket"), payload.get("region"), payload.get("jobIds")
    if not isinstance(bucket, str) or not isinstance(region, str) or not isinstance(ids, list) \
            or not all(isinstance(i, str) and i for i in ids) or len(ids) > MAX_BATCH:
        raise Refused(f"a reconcile batch names a bucket, a region and at most {MAX_BATCH} job ids")
    swept = (bucket, region) in settings.reconcile_buckets
    if not swept and ANY_BUCKET not in settings.allowed_buckets and bucket not in settings.allowed_buckets:
        raise Refused(f"bucket {bucket} is neither swept (RECONCILE_BUCKETS) nor in ALLOWED_BUCKETS")
    return bucket, region, list(dict.fromkeys(ids))


def handle(pipeline: Pipeline, payload: Mapping[str, Any], deadline: Deadline, request_id: str) -> dict[str, Any]:
    settings = pipeline.settings
    try:
        bucket, region, ids = order_of(payload, settings)
    except Refused as exc:
        log.warning("reconcile batch refused", reason=str(exc))
        return {"refused": str(exc)}
    try:
        known = describe_jobs(pipeline.ci_jobs.bound(deadline).describe, bucket, region, tuple(ids), deadline)
    except CiUnavailable as exc:
        raise RetryLater(str(exc)) from None
    store = pipeline.store.bound(deadline)
    prefix = state_prefix(settings.report_prefix)
    jobs = [known[i] for i in ids if i in known and not known[i].unfinished and not needs_no_marker(known[i])
            and outside_allow_lists(settings, known[i]) is None]

    def settled(job: Job) -> bool:
        try:
            return settled_now(job, prefix, store, settings, deadline, request_id)
        except (TransientError, StorageError):
            return False

    with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="settled") as heads:
        undone = [job for job, done in zip(jobs, heads.map(settled, jobs), strict=True) if not done]
    budget = deadline.budget or deadline.remaining()
    work = Deadline(deadline.at - max(0.5, min(2.0, budget * 0.05)), budget)
    checker = Checker(job_runner(pipeline, request_id), settings.concurrency, work,
                      min(max(2.0, settings.cos_timeout), budget / 4))
    try:
        for job in undone:
            checker.submit(job)
        checked = checker.drain()
    finally:
        checker.close()
    left = [c.job.job_id for c in checked if not c.settled and not _too_large_only(c)]
    summary = {"jobs": len(ids), "unknownToCi": len(ids) - len(known), "alreadyDone": len(jobs) - len(undone),
               "checked": sum(1 for c in checked if c.started), "settled": sum(1 for c in checked if c.settled),
               "left": len(left), "leftExamples": left[:EXAMPLES],
               "errors": [f"job {c.job.job_id}: {c.error}" for c in checked if c.error][:EXAMPLES]}
    log.at(log.WARNING if left else log.INFO, "reconcile batch finished", bucket=bucket,
           queueId=str(payload.get("queueId") or ""), tag=str(payload.get("tag") or ""),
           handedOffBy=str(payload.get("handedOffBy") or ""), **summary)
    if left:
        raise RetryLater(f"{len(left)} of {len(ids)} jobs are not settled yet (e.g. {', '.join(left[:EXAMPLES])})")
    return {"reconcile": summary}


def _too_large_only(checked: Any) -> bool:
    """A job whose only trouble is an output too large for this configuration: a retry would refuse it again."""
    return bool(checked.started and not checked.error and not checked.problems and checked.results) and all(
        result.outcome.value != "retry" and all(o.check.too_large or not o.error for o in result.objects)
        for result in checked.results)
