"""The response body: one entry per job, one per object (the contract: README, "What the function answers").

Verdicts: verified, mismatch, missing, superseded, unverifiable, error, and pending (VERIFY_MODE=server:
a CI FileHashCode job is hashing the object; its callback, handlers/checking/serverhash.py, completes it).
Outcomes: verified, failed, failed-job, retry, skipped, and pending (some outputs are pending; 200)."""
from __future__ import annotations

from typing import Any

from handlers.intake.models import JobResult, ObjectResult, Outcome


def job_entry(result: JobResult) -> dict[str, Any]:
    job = result.job
    entry: dict[str, Any] = {"jobId": job.job_id, "tag": job.tag, "state": job.state,
                             "outcome": result.outcome.value}
    if result.outcome is Outcome.FAILED_JOB:
        entry["code"] = job.code
        entry["message"] = job.message
    if job.unfinished:
        entry["reason"] = (f"the job is {job.state}: not finished, so nothing is checked; the reconciliation "
                           "sweep checks it once it has succeeded, if RECONCILE_TAGS names its Tag")
    entry["objects"] = [object_entry(o) for o in result.objects]
    return entry


def object_entry(result: ObjectResult) -> dict[str, Any]:
    check = result.check
    entry: dict[str, Any] = {
        "bucket": check.target.bucket,
        "region": check.target.region,
        "key": check.target.key,
        "expectedMd5": check.target.expected_md5,
        "verdict": check.verdict.value,
        "method": check.method.value,
        "actions": list(result.actions),
    }
    if check.state is not None:
        # The version the verdict is about, where it is now (a moved copy has an ETag of its own):
        # a consumer compares it with the object's ETag (README, residual windows).
        entry["etag"] = result.moved_etag or check.state.etag
    reasons = [r for r in (check.reason, *result.notes, result.error) if r]
    if reasons:
        entry["reason"] = "; ".join(reasons)
    if check.too_large:
        entry["tooLarge"] = True  # no retry hashes it: the timeout or VERIFY_MODE must change
    if result.error:
        entry["actionFailed"] = True  # a tag or move that failed: the object needs another try
    return entry


def needs_retry(results: list[JobResult]) -> bool:
    return any(r.outcome is Outcome.RETRY for r in results)
