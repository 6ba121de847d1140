"""Read a job back from CI before acting on a callback about it.

CI signs nothing it posts: a callback is a claim. Before a claimed success makes the function
touch storage, CI's own API (`GET /jobs/<ids>` on `<bucket>.ci.<region>.myqcloud.com`) must
know the job, report it as Success, and list the same outputs with the same MD5s. The job CI
reports is then the one that is verified, so every MD5 the function trusts comes from CI.

Jobs that cause no storage request (failed, cancelled, or without outputs) are not looked up:
forging one achieves nothing but an answer.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from handlers.deadline import MIN_ATTEMPT_SECONDS, Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import all_outputs, output_objects
from handlers.intake.models import Callback, Job, OutputObject
from handlers.intake.nodes import MalformedCallback

MAX_IDS_PER_REQUEST = 10  # CI's documented limit for one DescribeMediaJob call


class JobNotConfirmed(Exception):
    """CI does not vouch for the job as the callback describes it."""


class CiUnavailable(Exception):
    """CI could not be asked, or its answer could not be read: try again later."""


@dataclass(frozen=True)
class CiAnswer:
    jobs: Mapping[str, Job]  # by JobId
    missing: frozenset[str]  # NonExistJobIds


Lookup = Callable[[str, str, tuple[str, ...]], CiAnswer]  # (bucket, region, job ids)



# --- pure -------------------------------------------------------------------------------

def needs_confirmation(job: Job) -> bool:
    return job.succeeded and bool(output_objects(job))


def disagreement(claimed: Job, reported: Job | None) -> str | None:
    """Why CI's account of the job does not back the callback's; None when it does.

    The outputs must agree on key and MD5; a bucket counts where both name one (an older
    callback's `<Bucket/>` is no disagreement: CI's account, which is what gets verified, says)."""
    if reported is None:
        return f"job {claimed.job_id} is unknown to CI"
    if not reported.succeeded:
        return f"CI reports job {claimed.job_id} as {reported.state or 'without a state'}, not Success"
    ours, theirs = all_outputs(claimed), all_outputs(reported)
    only_ours, only_theirs = _unmatched(ours, theirs), _unmatched(theirs, ours)
    if only_ours or only_theirs:
        return (f"job {claimed.job_id}: the callback's outputs differ from CI's "
                f"(only in the callback: {_describe(only_ours)}; only at CI: {_describe(only_theirs)})")
    return None


def _unmatched(these: tuple[OutputObject, ...], those: tuple[OutputObject, ...]) -> set[OutputObject]:
    """The objects of `these` that no object of `those` matches: same key and MD5, and the same
    bucket where both name one. Indexed by key: a Segment or Snapshot job has thousands."""
    by_key: dict[str, list[OutputObject]] = {}
    for other in those:
        by_key.setdefault(other.key, []).append(other)
    return {one for one in these if not any(
        one.expected_md5 == other.expected_md5 and (not one.bucket or not other.bucket or one.bucket == other.bucket)
        for other in by_key.get(one.key, ()))}


def _describe(objects: set[OutputObject]) -> str:
    if not objects:
        return "none"
    shown = sorted(f"{o.bucket}/{o.key}={o.expected_md5 or 'no MD5'}" for o in objects)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


# --- the look-up --------------------------------------------------------------------------

def confirmed(callback: Callback, lookup: Lookup, deadline: Deadline,
              attempt_seconds: float = MIN_ATTEMPT_SECONDS) -> Callback:
    """The callback with every job that would touch storage replaced by CI's account of it.

    Raises JobNotConfirmed (the caller answers 403), CiUnavailable (503), or MalformedCallback
    when a job gives no input bucket to look it up in (400).
    """
    pending = [job for job in callback.jobs_detail if needs_confirmation(job)]
    if not pending:
        return callback
    reported: dict[str, Job] = {}
    for (bucket, region), ids in _by_bucket(pending).items():
        reported.update(describe_jobs(lookup, bucket, region, ids, deadline, attempt_seconds))
    for job in pending:
        problem = disagreement(job, reported.get(job.job_id))
        if problem:
            raise JobNotConfirmed(problem)
    return Callback(callback.event_name, tuple(
        reported[job.job_id] if needs_confirmation(job) else job for job in callback.jobs_detail))


def describe_jobs(lookup: Lookup, bucket: str, region: str, ids: tuple[str, ...], deadline: Deadline,
                  attempt_seconds: float = MIN_ATTEMPT_SECONDS) -> dict[str, Job]:
    """CI's account of each job it knows among `ids` (those it does not know are absent).
    Raises CiUnavailable when CI cannot be asked."""
    reported: dict[str, Job] = {}
    for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
        chunk = ids[start:start + MAX_IDS_PER_REQUEST]
        answer = _ask(lookup, bucket, region, chunk, deadline, attempt_seconds)
        reported.update((job_id, answer.jobs[job_id]) for job_id in chunk if job_id in answer.jobs)
    return reported


def _by_bucket(jobs: list[Job]) -> dict[tuple[str, str], tuple[str, ...]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        ids = groups.setdefault(job_place(job), [])
        if job.job_id not in ids:
            ids.append(job.job_id)
    return {where: tuple(ids) for where, ids in groups.items()}


def job_place(job: Job) -> tuple[str, str]:
    """(bucket, region) of the bucket the job ran in, whose CI host knows it: its input's, or for
    a job without input (Tts turns text into audio) the bucket it wrote its first output to."""
    source = job.input
    if source is not None and source.bucket_id and source.region:
        return source.bucket_id, source.region
    for target in output_objects(job):
        return target.bucket, target.region
    raise MalformedCallback(f"job {job.job_id}: names no bucket and region (Input or OutputFile) to read the job "
                            "back from CI")


def _ask(lookup: Lookup, bucket: str, region: str, ids: tuple[str, ...], deadline: Deadline,
         attempt_seconds: float) -> CiAnswer:
    try:
        return retrying(lambda: lookup(bucket, region, ids), deadline, attempt_seconds)
    except TransientError as exc:
        raise CiUnavailable(f"CI's job API did not answer: {exc}") from None
    except StorageError as exc:
        raise CiUnavailable(f"CI refused to describe the job: {exc}") from None
    except MalformedCallback as exc:
        raise CiUnavailable(f"CI's description of the job could not be read: {exc}") from None
