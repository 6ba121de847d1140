"""VERIFY_MODE=server: the FileHashCode jobs started for each version of an object, so that their number
(each one billed by CI) stays within HASH_JOBS_PER_VERSION across callbacks, replays and sweep ticks.

Tags cannot carry this: a configuration without `tag` actions writes none, and a tag is gone with the
version it was on. So the function keeps one small record per object version beside its other records,
in the object's bucket:

    <REPORT_PREFIX, or .ci-callback-verifier/>hash-jobs/<sha256 of the key, 32 hex digits>/<ETag>

holding `{"bucket", "key", "etag", "hashJobs": [{"hashJobId", "jobId", "submittedAt"}]}`, oldest first.
An operator reads it to see which jobs ran; deleting it allows as many again (after restoring an archived
object, say). It is written after CI accepted the job: two deliveries at the same instant may each start
one before either is recorded (COS has no conditional write), and a crash between the two steps leaves
one unrecorded; the `ci-hash-job` tag, where tags are written, still names it.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from handlers.deadline import Deadline, retrying
from handlers.models import OutputObject

FOLDER = "hash-jobs/"
_KEY_DIGEST_CHARS = 32


class Records(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


@dataclass(frozen=True)
class Started:
    hash_job_id: str
    job_id: str  # the media job whose check started it
    submitted_at: str = ""


# --- pure ------------------------------------------------------------------------------------

def record_location(target: OutputObject, etag: str, prefix: str) -> OutputObject:
    digest = hashlib.sha256(target.key.encode("utf-8")).hexdigest()[:_KEY_DIGEST_CHARS]
    return OutputObject(target.bucket, target.region, f"{prefix}{FOLDER}{digest}/{etag}", None)


def parse(body: bytes | None, target: OutputObject, etag: str) -> tuple[Started, ...]:
    """The jobs a record lists; none for no record, or one that is not this version's (a digest collision,
    a record someone edited into another shape)."""
    try:
        record: Any = json.loads(body) if body else None
    except ValueError:
        return ()
    if not isinstance(record, dict) or (record.get("key"), record.get("etag")) != (target.key, etag):
        return ()
    started = []
    for entry in record.get("hashJobs") or []:
        if isinstance(entry, dict) and isinstance(entry.get("hashJobId"), str) and entry["hashJobId"]:
            started.append(Started(entry["hashJobId"], str(entry.get("jobId") or ""),
                                   str(entry.get("submittedAt") or "")))
    return tuple(started)


def render(target: OutputObject, etag: str, started: Sequence[Started]) -> bytes:
    return json.dumps({"bucket": target.bucket, "key": target.key, "etag": etag, "hashJobs": [
        {"hashJobId": s.hash_job_id, "jobId": s.job_id, "submittedAt": s.submitted_at} for s in started]},
        ensure_ascii=False, indent=2).encode("utf-8")


def merged(earlier: Sequence[Started], new: Started) -> tuple[Started, ...]:
    return (*earlier, new) if all(s.hash_job_id != new.hash_job_id for s in earlier) else tuple(earlier)


# --- I/O -------------------------------------------------------------------------------------

class HashLedger:
    def __init__(self, records: Records, prefix: str):
        self._records = records
        self._prefix = prefix

    def where(self, target: OutputObject, etag: str) -> OutputObject:
        return record_location(target, etag, self._prefix)

    def read(self, target: OutputObject, etag: str, deadline: Deadline) -> tuple[Started, ...]:
        """Raises TransientError or StorageError: without the count no job may be started."""
        where = self.where(target, etag)
        return parse(retrying(lambda: self._records.get_bytes(where), deadline), target, etag)

    def record(self, target: OutputObject, etag: str, hash_job_id: str, job_id: str, deadline: Deadline) -> None:
        """Add a job, read afresh first so that a concurrent delivery's entry is kept."""
        where = self.where(target, etag)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        started = merged(self.read(target, etag, deadline), Started(hash_job_id, job_id, now))
        body = render(target, etag, started)
        retrying(lambda: self._records.put_bytes(where, body, "application/json; charset=utf-8"), deadline)
