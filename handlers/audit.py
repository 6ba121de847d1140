"""Audit reports (REPORT_PREFIX): one JSON object per job in its output bucket.

The key depends only on the job, so a replay overwrites the report instead of adding one.
That makes a report something a forger would like to rewrite: with VERIFY_WITH_CI every job
that gets one (failed jobs and jobs without outputs too, which are otherwise never looked
up) is read back from CI first, and the report tells CI's account, not the callback's.
"""
from __future__ import annotations

import json
import time
from functools import partial
from typing import Protocol

from handlers.callback import output_objects
from handlers.ci import JobNotConfirmed, Lookup, describe_jobs, needs_confirmation
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.models import Callback, Job, JobResult, OutputObject
from handlers.report import combined, entry_standing, job_entry

STATE_PREFIX = ".ci-callback-verifier/"  # the function's own records (notification markers) without REPORT_PREFIX


class Writer(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


def report_location(result: JobResult, prefix: str) -> OutputObject | None:
    return location_of(result.job, prefix)


def location_of(job: Job, prefix: str) -> OutputObject | None:
    """The output bucket of the job (its input bucket when it wrote nothing)."""
    outputs = output_objects(job)
    if outputs:
        bucket, region = outputs[0].bucket, outputs[0].region
    elif job.input is not None and job.input.bucket_id and job.input.region:
        bucket, region = job.input.bucket_id, job.input.region
    else:
        return None
    return OutputObject(bucket, region, f"{prefix}{job.job_id}.json", None)


def report_body(result: JobResult, request_id: str, started: float, finished: float) -> bytes:
    entry = job_entry(result)
    entry["timings"] = {
        "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
        "durationMs": round((finished - started) * 1000, 1),
    }
    entry["requestId"] = request_id
    return json.dumps(entry, ensure_ascii=False, indent=2).encode("utf-8")


FINAL_VERDICTS = ("verified", "mismatch", "missing", "unverifiable")


def merged_report(earlier: bytes | None, update: bytes) -> bytes:
    """The job's report with the objects of `update` (a partial result: a FileHashCode callback's)
    in place of their earlier entries, the other entries kept, and the outcome the whole job's (pure)."""
    try:
        report = json.loads(earlier) if earlier else None
    except ValueError:
        report = None
    fresh = json.loads(update)
    if not isinstance(report, dict) or report.get("jobId") != fresh.get("jobId"):
        return update
    entries = {(o.get("bucket"), o.get("key")): o for o in report.get("objects") or [] if isinstance(o, dict)}
    for entry in fresh["objects"]:
        place = (entry["bucket"], entry["key"])
        # A late or replayed callback finds the version it hashed gone: what was decided stands.
        if entry["verdict"] == "superseded" and entries.get(place, {}).get("verdict") in FINAL_VERDICTS:
            continue
        entries[place] = entry
    objects = list(entries.values())
    outcome = combined(entry_standing(o) for o in objects).value
    return json.dumps({**fresh, "outcome": outcome, "objects": objects}, ensure_ascii=False, indent=2).encode()


def write_reports(results: list[JobResult], prefix: str, store: Writer, deadline: Deadline,
                  request_id: str, started: float) -> list[str]:
    """Write every job's report; returns the problems (empty when all were written). A partial
    result is merged into the report already there (read, then written: of two FileHashCode callbacks
    of one job finishing at the same moment, one's entry may be left saying `pending`; the tags,
    which the report command reads without reports, are right either way)."""
    problems = []
    finished = time.time()
    for result in results:
        where = report_location(result, prefix)
        if where is None:
            continue
        body = report_body(result, request_id, started, finished)
        try:
            if result.partial:
                body = merged_report(retrying(partial(store.get_bytes, where), deadline), body)
            retrying(partial(store.put_bytes, where, body, "application/json; charset=utf-8"), deadline)
        except (TransientError, StorageError) as exc:
            problems.append(f"the audit report {where.bucket}/{where.key} was not written: {exc}")
    return problems


# --- confirming the jobs a report is written for --------------------------------------------

def report_disagreement(claimed: Job, reported: Job | None) -> str | None:
    """Why CI's account does not back a callback about a job that gets a report (pure)."""
    if reported is None:
        return f"job {claimed.job_id} is unknown to CI"
    # A callback without State (WordsGeneralize) says in Code what CI's job API says in State.
    if reported.succeeded != claimed.succeeded or (claimed.state and reported.state != claimed.state):
        return (f"CI reports job {claimed.job_id} as {reported.state or 'without a state'}, "
                f"not {claimed.state or 'without a state'}")
    if set(output_objects(claimed)) != set(output_objects(reported)):
        return f"job {claimed.job_id}: the callback's outputs differ from CI's"
    return None


def confirmed_for_reports(callback: Callback, lookup: Lookup, prefix: str, deadline: Deadline) -> Callback:
    """The callback with every job that gets a report or a notification, and was not already
    confirmed (a success with outputs), replaced by CI's account of it. Raises JobNotConfirmed
    when CI does not back one: nothing is written or sent then, not even the report."""
    pending = [job for job in callback.jobs_detail
               if not needs_confirmation(job) and location_of(job, prefix) is not None]
    if not pending:
        return callback
    groups: dict[tuple[str, str], list[str]] = {}
    for job in pending:
        source = job.input
        if source is None or not source.bucket_id or not source.region:
            raise JobNotConfirmed(f"job {job.job_id} names no Input.BucketId and Input.Region to read it back "
                                  "from CI, so no report is written for it")
        groups.setdefault((source.bucket_id, source.region), []).append(job.job_id)
    reported: dict[str, Job] = {}
    for (bucket, region), ids in groups.items():
        reported.update(describe_jobs(lookup, bucket, region, tuple(dict.fromkeys(ids)), deadline))
    for job in pending:
        problem = report_disagreement(job, reported.get(job.job_id))
        if problem:
            raise JobNotConfirmed(problem)
    replaced = {job.job_id for job in pending}
    return Callback(callback.event_name, tuple(reported[job.job_id] if job.job_id in replaced else job
                                               for job in callback.jobs_detail), callback.workflow_execution)
