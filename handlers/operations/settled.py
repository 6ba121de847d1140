"""A per-job marker that the job is settled: `<REPORT_PREFIX or .ci-callback-verifier/>settled/<JobId>`,
in the bucket CI knows the job in.

The pipeline writes it after a job's outcome is final on any path (callback, replay, queue, sweep,
worker), when a sweep is configured; the sweep then tells a done job with one HEAD instead of a
tag read per output. "Settled" is monotonic: nothing deletes a marker, so any reader that once saw
one may rely on it forever (the checkpoint does: handlers/reconcile/checkpoint.py).

A job is settled when every output has a verdict no later look would change (verified, mismatch,
missing, unverifiable, superseded), no tag or move failed, none is too large for this configuration
(the sweep keeps trying those, README: HASH_MIB_PER_SECOND), none waits for a FileHashCode job, and
its audit report (REPORT_PREFIX) was written.

A job without a marker may still be done: its last output finished by a FileHashCode callback (a
partial result, which settles nothing by itself), checked before markers existed, or its marker
not written. Before checking it again, the sweep reads its outputs' tags as it always did
(`done_by_tags`: every output, where it is now, carries this job's final verdict) and, if they say
so, writes the marker itself: the next look costs one request again.
"""
from __future__ import annotations

import json
import time
from functools import partial
from typing import Protocol

from handlers.actions.moves import destination_for
from handlers.actions.policy import movable
from handlers.ci.confirm import job_place
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import output_objects
from handlers.intake.models import Job, JobResult, ObjectState, Outcome, OutputObject, Verdict
from handlers.intake.nodes import MalformedCallback
from handlers.storage.tags import JOB_TAG, VERIFY_TAG

SETTLED_DIR = "settled/"
FINAL_VERDICTS = frozenset({"verified", "mismatch", "missing", "unverifiable", "superseded"})
FINAL_OUTCOMES = frozenset({Outcome.VERIFIED, Outcome.FAILED, Outcome.FAILED_JOB})


FINAL_TAGS = frozenset({Verdict.VERIFIED.value, Verdict.MISMATCH.value, Verdict.UNVERIFIABLE.value})


class MarkerStore(Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


class TaggedStore(MarkerStore, Protocol):
    def tags(self, target: OutputObject) -> dict[str, str] | None: ...


def marker_of(job: Job, prefix: str) -> OutputObject | None:
    """The job's marker, in the bucket CI knows the job in (the bucket the sweep lists); None for a
    job that names no bucket."""
    try:
        bucket, region = job_place(job)
    except MalformedCallback:
        return None
    return OutputObject(bucket, region, f"{prefix}{SETTLED_DIR}{job.job_id}", None)


def marker_at(bucket: str, region: str, job_id: str, prefix: str) -> OutputObject:
    """The marker of a job known by id only, in the bucket CI lists it in."""
    return OutputObject(bucket, region, f"{prefix}{SETTLED_DIR}{job_id}", None)


def needs_no_marker(job: Job) -> bool:
    """A job with nothing to verify is settled as CI lists it: failed, cancelled, or without outputs."""
    return not job.unfinished and (not job.succeeded or not output_objects(job))


def settles(result: JobResult) -> bool:
    """Whether no later look at the job would change anything (pure)."""
    if result.partial or result.outcome not in FINAL_OUTCOMES:
        return False
    return all(o.check.verdict.value in FINAL_VERDICTS and not o.error and not o.check.too_large
               for o in result.objects)


def marker_body(result: JobResult, request_id: str) -> bytes:
    counts: dict[str, int] = {}
    for obj in result.objects:
        counts[obj.check.verdict.value] = counts.get(obj.check.verdict.value, 0) + 1
    return json.dumps({"jobId": result.job.job_id, "outcome": result.outcome.value, "verdicts": counts,
                       "settledAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "requestId": request_id},
                      ensure_ascii=False).encode("utf-8")


def record(results: list[JobResult], prefix: str, store: MarkerStore, deadline: Deadline,
           request_id: str) -> list[str]:
    """Write the marker of every settled job; returns what could not be written (the sweep then
    simply looks at those jobs again)."""
    problems = []
    for result in results:
        where = marker_of(result.job, prefix) if settles(result) else None
        if where is None:
            continue
        try:
            retrying(partial(store.put_bytes, where, marker_body(result, request_id), "application/json"), deadline)
        except (TransientError, StorageError) as exc:
            problems.append(f"the settled marker {where.bucket}/{where.key} was not written: {exc}")
    return problems


def is_settled(job: Job, prefix: str, store: MarkerStore, deadline: Deadline) -> bool:
    """One HEAD. Raises TransientError or StorageError when COS cannot tell."""
    if needs_no_marker(job):
        return True
    where = marker_of(job, prefix)
    return where is not None and retrying(partial(store.head, where), deadline) is not None


def places(target: OutputObject, job_id: str, settings: Settings) -> list[OutputObject]:
    """Where an output may be now: its own key, or where a move took it."""
    found = [target]
    for verdict in (Verdict.VERIFIED, Verdict.MISMATCH):
        if movable(verdict, settings):
            found.append(destination_for(target, verdict, job_id, settings))
    return found


def done_by_tags(job: Job, store: TaggedStore, settings: Settings, deadline: Deadline) -> bool:
    """Whether every output of the job, where it is now, carries this job's final verdict (a tag read
    per output and place). Raises TransientError or StorageError when COS cannot tell."""
    for target in output_objects(job):
        for place in places(target, job.job_id, settings):
            tags = retrying(partial(store.tags, place), deadline)
            if tags is not None:
                if tags.get(JOB_TAG) != job.job_id or tags.get(VERIFY_TAG) not in FINAL_TAGS:
                    return False
                break
        else:
            return False  # nowhere to be found: let a real check say `missing`
    return True


def settled_now(job: Job, prefix: str, store: TaggedStore, settings: Settings, deadline: Deadline,
                request_id: str) -> bool:
    """The marker, else the tags (then the marker is written, so that the next look costs one request).
    Raises TransientError or StorageError when COS cannot tell."""
    if is_settled(job, prefix, store, deadline):
        return True
    if not (settings.action_verified or settings.action_failed) or not done_by_tags(job, store, settings, deadline):
        return False
    where = marker_of(job, prefix)
    if where is not None:
        body = json.dumps({"jobId": job.job_id, "settledBy": "tags", "requestId": request_id,
                           "settledAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        try:
            retrying(partial(store.put_bytes, where, body, "application/json"), deadline)
        except (TransientError, StorageError):
            pass  # looked at again next time: two requests then
    return True
