"""Audit reports (REPORT_PREFIX): one JSON object per job in its output bucket.

The key depends only on the job, so a replay overwrites the report instead of adding one.
"""
from __future__ import annotations

import json
import time
from functools import partial
from typing import Protocol

from handlers.callback import output_objects
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.models import JobResult, OutputObject
from handlers.report import job_entry


class Writer(Protocol):
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


def report_location(result: JobResult, prefix: str) -> OutputObject | None:
    """The output bucket of the job (its input bucket when it wrote nothing)."""
    job = result.job
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


def write_reports(results: list[JobResult], prefix: str, store: Writer, deadline: Deadline,
                  request_id: str, started: float) -> list[str]:
    """Write every job's report; returns the problems (empty when all were written)."""
    problems = []
    finished = time.time()
    for result in results:
        where = report_location(result, prefix)
        if where is None:
            continue
        body = report_body(result, request_id, started, finished)
        try:
            retrying(partial(store.put_bytes, where, body, "application/json; charset=utf-8"), deadline)
        except (TransientError, StorageError) as exc:
            problems.append(f"the audit report {where.bucket}/{where.key} was not written: {exc}")
    return problems
