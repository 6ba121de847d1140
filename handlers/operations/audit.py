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
from typing import Any, Protocol

from handlers.checking.outcome import combined, entry_standing
from handlers.ci.confirm import JobNotConfirmed, Lookup, describe_jobs, needs_confirmation
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import output_objects
from handlers.intake.models import Callback, Job, JobResult, OutputObject, Verdict
from handlers.operations.answer import job_entry


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
    for written, obj in zip(entry["objects"], result.objects, strict=True):
        if obj.moved_etag and obj.check.state is not None and obj.moved_etag != obj.check.state.etag:
            # The version checked, as a `pending` entry for it names it (its `etag` is the moved copy's).
            written["sourceEtag"] = obj.check.state.etag
    entry["timings"] = {
        "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
        "durationMs": round((finished - started) * 1000, 1),
    }
    entry["requestId"] = request_id
    return json.dumps(entry, ensure_ascii=False, indent=2).encode("utf-8")


FINAL_VERDICTS = ("verified", "mismatch", "missing", "unverifiable")
CONTENT_TYPE = "application/json; charset=utf-8"
Entry = dict[str, Any]


def _objects(body: bytes | None, job_id: object) -> dict[tuple[object, object], Entry] | None:
    """The object entries of a report of job `job_id` by (bucket, key); None for no report, or not this job's."""
    try:
        report = json.loads(body) if body else None
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("jobId") != job_id:
        return None
    return {(o.get("bucket"), o.get("key")): o for o in report.get("objects") or [] if isinstance(o, dict)}


def _same_version(final: Entry, pending: Entry) -> bool:
    """Whether a final entry is about the version a `pending` one names (before a move: `sourceEtag`)."""
    return bool(pending.get("etag")) and pending.get("etag") in (final.get("etag"), final.get("sourceEtag"))


def _stands(earlier: Entry | None, entry: Entry, partial_result: bool) -> bool:
    """Whether the earlier entry for an object stays in place of `entry` (pure): a final verdict is never
    turned back to `pending` for the same version, whoever writes last (a later version's `pending` replaces
    it); nor replaced by `superseded` from a late or replayed hash callback (the version it hashed is gone)."""
    if earlier is None or earlier.get("verdict") not in FINAL_VERDICTS:
        return False
    if entry.get("verdict") == "pending":
        return _same_version(earlier, entry)
    return partial_result and entry.get("verdict") == "superseded"


def _carried(earlier: Entry | None, entry: Entry) -> Entry:
    """`entry`, with the earlier entry's `sourceEtag` when both are final verdicts about the same copy (pure).
    A replay that recognises an earlier move knows only the copy (the source is gone): without the version
    the move checked, a late `pending` entry naming it would no longer be seen as about that version."""
    if (earlier is None or "sourceEtag" in entry or not earlier.get("sourceEtag")
            or entry.get("verdict") not in FINAL_VERDICTS or earlier.get("verdict") not in FINAL_VERDICTS
            or not entry.get("etag") or entry.get("etag") != earlier.get("etag")):
        return entry
    return {**entry, "sourceEtag": earlier["sourceEtag"]}


def merged_report(earlier: bytes | None, update: bytes, partial_result: bool = True) -> bytes:
    """The report to write over `earlier` (pure). A partial result (a FileHashCode callback's) puts its objects
    in place of their earlier entries and keeps the others; a whole one (the media job's) names every output,
    each replaced by its earlier entry where that stands. The outcome is then the whole job's. An entry about
    a moved copy keeps the `sourceEtag` an earlier entry about that copy named (`_carried`)."""
    fresh = json.loads(update)
    before = _objects(earlier, fresh.get("jobId"))
    if before is None:
        return update
    entries = dict(before) if partial_result else {}
    kept = False
    for entry in fresh["objects"]:
        place = (entry["bucket"], entry["key"])
        if _stands(before.get(place), entry, partial_result):
            entries[place], kept = before[place], True
        else:
            entries[place] = _carried(before.get(place), entry)
            kept = kept or entries[place] is not entry
    if not partial_result and not kept:
        return update  # nothing earlier stands: the job's own account, outcome and all (a failed job too)
    objects = list(entries.values())
    outcome = combined(entry_standing(o) for o in objects).value
    return json.dumps({**fresh, "outcome": outcome, "objects": objects}, ensure_ascii=False, indent=2).encode()


def overwritten(current: bytes | None, update: bytes) -> bool:
    """Whether the report read back after writing `update` lost what it said (pure): an object of it gone, or
    a final verdict of it turned back to `pending` for the same version, by a writer that read before our
    write and wrote after it. A report removed since (None) is left removed."""
    fresh = json.loads(update)
    now = _objects(current, fresh.get("jobId"))
    if now is None:
        return False
    for entry in fresh["objects"]:
        there = now.get((entry["bucket"], entry["key"]))
        if there is None or (entry["verdict"] in FINAL_VERDICTS and there.get("verdict") == "pending"
                             and _same_version(entry, there)):
            return True
    return False


def _write(store: Writer, where: OutputObject, body: bytes, partial_result: bool, merge: bool) -> bytes:
    """One write, reading what it may have to keep right before it (again on every retry); returns what it wrote."""
    if merge:
        body = merged_report(store.get_bytes(where), body, partial_result)
    store.put_bytes(where, body, CONTENT_TYPE)
    return body


def _recognised_move(result: JobResult) -> bool:
    """Whether an object's entry names a move this invocation did not make (a replay recognised it): only the
    earlier report knows the version that move checked (its `sourceEtag`)."""
    return any(not o.moved_etag and any(a.startswith("moved:") for a in o.actions) for o in result.objects)


def write_reports(results: list[JobResult], prefix: str, store: Writer, deadline: Deadline,
                  request_id: str, started: float) -> list[str]:
    """Write every job's report; returns the problems (empty when all were written).

    In VERIFY_MODE=server a job's report has two kinds of writers that can overlap: the media job's
    invocation (whole, some outputs `pending`) and each FileHashCode callback's (partial: the one object it
    finished). Either reads the report right before its write and merges (merged_report), then reads it back
    and, when a writer that read before that write overwrote it (`overwritten`), merges and writes once more.
    What remains: writer B's read and write enclosing both A's write and A's read-back, i.e. A's write and
    read-back (two requests) landing within B's read-to-write gap (B's GET answer travelling back and its PUT
    being applied: about one round trip and a PUT; longer for a PUT that COS applies after it was given up on,
    README's residual windows). A's entry then stays as B wrote it (`pending`, or absent) though the tags are
    final, until a replay of the job's callback writes the report again. A whole report with nothing pending never
    reads (nothing earlier can stand against it) unless it names a move a replay recognised (`_recognised_move`):
    no request is added outside server mode but that."""
    problems = []
    finished = time.time()
    for result in results:
        where = report_location(result, prefix)
        if where is None:
            continue
        body = report_body(result, request_id, started, finished)
        merge = (result.partial or any(o.check.verdict is Verdict.PENDING for o in result.objects)
                 or _recognised_move(result))
        write = partial(_write, store, where, body, result.partial, merge)
        try:
            written = retrying(write, deadline)
            if merge and overwritten(retrying(partial(store.get_bytes, where), deadline), written):
                retrying(write, deadline)
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
