"""What a job's objects make of its outcome (pure): one object's standing, the job's by precedence.

Shared by the pipeline's check-and-act step (handlers/process.py), a FileHashCode callback's finish
(handlers/checking/serverhash.py) and the audit report's merge (handlers/operations/audit.py); the answer's JSON is
handlers/operations/answer.py."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from handlers.intake.models import Job, ObjectResult, Outcome

# A job takes the first of these that one of its objects stands for.
_PRECEDENCE = (Outcome.RETRY, Outcome.FAILED, Outcome.PENDING, Outcome.VERIFIED)


def standing(verdict: str, too_large: bool, action_failed: bool) -> Outcome:
    """What one object makes of its job's outcome: an object to try again makes the job `retry`;
    a mismatch, a missing object or an output too large for this configuration `failed` (another
    try would refuse it again); then `pending`, `verified`; anything else decides nothing."""
    if action_failed or (verdict == "error" and not too_large):
        return Outcome.RETRY
    if verdict in ("mismatch", "missing", "error"):
        return Outcome.FAILED
    if verdict == "pending":
        return Outcome.PENDING
    return Outcome.VERIFIED if verdict == "verified" else Outcome.SKIPPED


def combined(standings: Iterable[Outcome]) -> Outcome:
    found = set(standings)
    return next((outcome for outcome in _PRECEDENCE if outcome in found), Outcome.SKIPPED)


def entry_standing(entry: dict[str, Any]) -> Outcome:
    """`standing` of an object entry as the answer and the audit report carry it."""
    return standing(str(entry.get("verdict")), bool(entry.get("tooLarge")), bool(entry.get("actionFailed")))


def outcome_of(job: Job, results: tuple[ObjectResult, ...]) -> Outcome:
    if job.unfinished:  # named before its end (a workflow's task, a report's read-back): the sweep checks it
        return Outcome.SKIPPED
    if not job.succeeded:
        return Outcome.FAILED_JOB
    return combined(standing(r.check.verdict.value, r.check.too_large, bool(r.error)) for r in results)
