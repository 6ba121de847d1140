"""VERIFY_MODE=server: the FileHashCode jobs started for each version of an object, so that their number
(each one billed by CI) stays within HASH_JOBS_PER_VERSION across callbacks, replays and sweep ticks.

Tags cannot carry this: a configuration without `tag` actions writes none, and a tag is gone with the
version it was on. So the function keeps one small record per object version beside its other records,
in the object's bucket:

    <REPORT_PREFIX, or .ci-callback-verifier/>hash-jobs/<sha256 of the key, 32 hex digits>/<ETag>

holding `{"bucket", "key", "etag", "hashJobs": [{"hashJobId", "jobId", "submittedAt", "reservation"}]}`,
oldest first. An operator reads it to see which jobs ran; deleting it allows as many again (after restoring
an archived object, say).

An entry is reserved (a `reservation` token, no `hashJobId` yet) before CI is asked for the job, and the
job's id filled in after: a job is only started once the record counts it, so a record that cannot be
written (PutObject denied on that prefix, COS failing) starts none, rather than jobs without end. A
reservation whose submission failed is taken back (so a CI outage does not use up the bound; a job CI
started without its answer reaching us then goes uncounted); one left behind (the fill-in failed, the
function stopped between the steps) keeps counting, against the bound, a job that may or may not exist.
Two deliveries at the same instant may still each reserve and start one (COS has no conditional write: the
later write keeps only its own entry).
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import OutputObject

FOLDER = "hash-jobs/"
_KEY_DIGEST_CHARS = 32


class Records(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


@dataclass(frozen=True)
class Started:
    hash_job_id: str  # "" while reserved: CI has not (yet) named the job
    job_id: str  # the media job whose check started it
    submitted_at: str = ""
    reservation: str = ""  # the token the entry was reserved under

    @property
    def counted_as(self) -> str:
        """What tells this entry from the others when jobs are counted."""
        return self.hash_job_id or f"reserved:{self.reservation}"


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
        if not isinstance(entry, dict):
            continue
        hash_job, reservation = entry.get("hashJobId"), entry.get("reservation")
        hash_job = hash_job if isinstance(hash_job, str) else ""
        reservation = reservation if isinstance(reservation, str) else ""
        if hash_job or reservation:
            started.append(Started(hash_job, str(entry.get("jobId") or ""), str(entry.get("submittedAt") or ""),
                                   reservation))
    return tuple(started)


def render(target: OutputObject, etag: str, started: Sequence[Started]) -> bytes:
    return json.dumps({"bucket": target.bucket, "key": target.key, "etag": etag, "hashJobs": [
        {"hashJobId": s.hash_job_id, "jobId": s.job_id, "submittedAt": s.submitted_at,
         **({"reservation": s.reservation} if s.reservation else {})} for s in started]},
        ensure_ascii=False, indent=2).encode("utf-8")


def merged(earlier: Sequence[Started], new: Started) -> tuple[Started, ...]:
    return (*earlier, new) if all(s.counted_as != new.counted_as for s in earlier) else tuple(earlier)


def filled(earlier: Sequence[Started], reservation: str, hash_job_id: str) -> tuple[Started, ...]:
    """The reserved entry given its job; appended when a concurrent write lost the reservation."""
    if any(s.reservation == reservation for s in earlier):
        return tuple(Started(hash_job_id, s.job_id, s.submitted_at, s.reservation) if s.reservation == reservation
                     else s for s in earlier)
    return merged(earlier, Started(hash_job_id, "", _now(), reservation))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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

    def reserve(self, target: OutputObject, etag: str, job_id: str, deadline: Deadline) -> str:
        """Count a job about to be submitted; the reservation's token. Raises StorageError or TransientError
        saying that no job may start: one the record does not count could be started again without end."""
        token = uuid.uuid4().hex[:16]
        try:
            self._write(target, etag, lambda earlier: merged(earlier, Started("", job_id, _now(), token)), deadline)
        except (TransientError, StorageError) as exc:
            where = self.where(target, etag)
            folder = f"{where.bucket}/{self._prefix}{FOLDER}"
            kind = TransientError if isinstance(exc, TransientError) else StorageError
            raise kind(f"{exc}: the record of the FileHashCode jobs started for this version could not be "
                            f"written, so none is started (the execution role needs cos:PutObject on "
                            f"{folder})") from None
        return token

    def fill(self, target: OutputObject, etag: str, token: str, hash_job_id: str, deadline: Deadline) -> None:
        """Name the job CI started under the reservation (an operator reads it; a replay asks CI about it)."""
        self._write(target, etag, lambda earlier: filled(earlier, token, hash_job_id), deadline)

    def ensure_listed(self, target: OutputObject, etag: str, hash_job_id: str, job_id: str,
                      deadline: Deadline) -> None:
        """List a job that hashed this version when the record lost it (two deliveries writing it at once): a
        later run asks CI about every listed job, and one that hashed the version must be among them."""
        earlier = self.read(target, etag, deadline)
        if any(s.hash_job_id == hash_job_id for s in earlier):
            return
        self._write(target, etag, lambda now: merged(now, Started(hash_job_id, job_id, _now())), deadline)

    def release(self, target: OutputObject, etag: str, token: str, deadline: Deadline) -> None:
        """Take back a reservation whose job CI did not start."""
        self._write(target, etag, lambda earlier: tuple(s for s in earlier if s.reservation != token), deadline)

    def _write(self, target: OutputObject, etag: str,
               change: Callable[[tuple[Started, ...]], tuple[Started, ...]], deadline: Deadline) -> None:
        """Read the record afresh, so that a concurrent delivery's entry is kept, and write it changed."""
        where = self.where(target, etag)
        body = render(target, etag, change(self.read(target, etag, deadline)))
        retrying(lambda: self._records.put_bytes(where, body, "application/json; charset=utf-8"), deadline)
