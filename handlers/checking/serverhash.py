"""VERIFY_MODE=server: CI hashes the objects whose ETag does not decide; no byte passes through the function.

- Under 128 MB: the synchronous `GET /<key>?ci-process=filehash&type=md5` on the cos host
  (https://cloud.tencent.com/document/api/436/121027; `CosS3Client.file_hash`, always `AddToHeader=False`:
  true would write x-cos-meta-md5 onto the output). It answers within its 10 s timeout, and the verdict
  and actions follow at once, as for a hash made here.
- From 128 MB: a `FileHashCode` file job (`POST /file_jobs`, https://cloud.tencent.com/document/api/436/83108;
  `ci_create_file_hash_job`). The object is `pending` (tagged `ci-verify=pending`, `ci-hash-job=<file job>`
  when verdict tags are written) and its job `pending`. The job's TaskFinish callback comes back to this
  function; its `UserData` (at most 1,024 printable ASCII characters) carries what finishing needs: the
  media job's JobId and Tag, the bucket and key, the ETag that was hashed, the expected MD5 and the job's end.
- A FileHashCode callback is a claim like any other: the job is read back from CI (`GET /file_jobs/<id>`,
  https://cloud.tencent.com/document/api/436/83109; `ci_get_file_process_jobs`) and only CI's account is used
  (its UserData, its MD5, its ETag). A job CI does not know is refused (403). The object must still have the
  ETag that was hashed; if it changed, the object is checked afresh.
- A lost callback: the pending tag names the file job, so a replay of the media job's callback, or the
  sweep (which re-runs every job whose outputs lack a final verdict), asks CI for that job and finishes the
  object from its answer; a job still running stays pending, and no second job is started for it.
- CI bills each job: at most HASH_JOBS_PER_VERSION are started for one version of an object, counted in a
  record of the function's own (handlers/checking/hashledger.py) whatever the tag actions. A job that fails (an
  archived object) starts the next while the bound allows; then the object is `error` with CI's Code and
  Message on every path, and its `pending` tag is taken off: it announces no work any more. Every job the record
  lists for the version is asked about: one that hashed it decides, whatever the order they are listed or
  finished in (two deliveries at once may each start one, and the one listed last may be the one that failed).
- A version written after the media job ended belongs to whoever wrote it: it is `superseded` before anything
  else is looked at, on every path, and nothing of this job's (not even `pending`) is written on it.

Here: the decisions. CI's API is handlers/ci/filehash.py, the UserData checking/ticket.py, the `pending` tag
checking/pending.py, and finishing a FileHashCode callback checking/hashcallback.py.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from handlers import log
from handlers.checking.hashledger import HashLedger, Started
from handlers.checking.pending import HASH_JOB_TAG, clear_pending, mark
from handlers.checking.ticket import Ticket, decode, encode
from handlers.checking.verify import SUPERSEDED_AFTER, decide_by_content, decide_without_content
from handlers.ci.filehash import SYNC_LIMIT, CiHashing, FileJob, SyncRefused
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import Check, Job, Method, ObjectResult, ObjectState, OutputObject, Verdict
from handlers.storage.cos import ObjectStore
from handlers.storage.records import STATE_PREFIX
from handlers.storage.tags import JOB_TAG

TagReader = Callable[[], "dict[str, str] | None"]


class ServerHash:
    def __init__(self, hashing: CiHashing, settings: Settings):
        self.hashing = hashing
        self._settings = settings

    def check(self, job: Job, target: OutputObject, store: ObjectStore, deadline: Deadline, read_tags: TagReader,
              hashed: FileJob | None = None) -> Check | ObjectResult:
        """The verdict CI's hash gives, to be acted on; or, for a pending object, its final result."""
        try:
            return retrying(lambda: self._inspect(job, target, store, deadline, read_tags, hashed), deadline)
        except (TransientError, StorageError) as exc:
            return Check(target, Verdict.ERROR, Method.NONE, str(exc))

    def _inspect(self, job: Job, target: OutputObject, store: ObjectStore, deadline: Deadline,
                 read_tags: TagReader, hashed: FileJob | None) -> Check | ObjectResult:
        state = store.head(target)
        if state is not None and _written_after(state, job.end_time):
            # A late callback, a replay, a sweep re-running an older job: the version there now was written
            # after this job ended, by whoever owns it now. Nothing of ours goes on it, not even `pending`.
            return _superseded(target, state, job, hashed)
        settled = decide_without_content(target, state, "auto")
        if settled is not None:
            return settled
        assert state is not None and target.expected_md5 is not None
        seen: dict[str, FileJob] = {}  # the file jobs CI was asked about, by id
        running: ObjectResult | None = None  # `pending`, unless another job on this version hashed it already
        ledger = HashLedger(store, self._settings.report_prefix or STATE_PREFIX)
        for found in self._earlier_jobs(job, target, read_tags, deadline, hashed):
            seen[found.job_id] = found
            decided = _by_file_job(job, target, state, found)
            if isinstance(decided, Check):
                if hashed is not None and found.job_id == hashed.job_id:
                    _keep_listed(ledger, target, state.etag, found.job_id, job.job_id, deadline)
                return decided
            running = running or decided
        if running is not None:
            # The job the tags name still runs; another started on this version (two deliveries at once) may
            # have hashed it already, and then that decides.
            try:
                decided = self._by_started(job, target, state, ledger.read(target, state.etag, deadline),
                                           deadline, seen)
            except (TransientError, StorageError):
                return running  # the running job's callback decides
            return decided if isinstance(decided, Check) else running
        if state.size < SYNC_LIMIT:
            try:
                return self._sync(target, state, job.end_time, store, deadline)
            except SyncRefused as exc:
                log.warning("CI's synchronous hash refused the object: submitting a FileHashCode job", reason=str(exc))
        started = ledger.read(target, state.etag, deadline)
        return (self._by_started(job, target, state, started, deadline, seen)
                or self._by_new_job(job, target, state, store, deadline, ledger, started, seen))

    def _sync(self, target: OutputObject, state: ObjectState, end: datetime | None, store: ObjectStore,
              deadline: Deadline) -> Check:
        md5, etag = self.hashing.sync_md5(target, deadline)
        if not etag:  # the answer did not say which version it hashed: the one HEAD sees still must be it
            after = store.head(target)
            etag = after.etag if after is not None else ""
        if etag != state.etag:
            raise TransientError(f"{target.bucket}/{target.key} changed while CI hashed it")
        return _by_ci(decide_by_content(target, state, md5, end), "filehash")

    def _by_started(self, job: Job, target: OutputObject, state: ObjectState, started: tuple[Started, ...],
                    deadline: Deadline, seen: dict[str, FileJob]) -> Check | ObjectResult | None:
        """What the jobs the record lists for this version settle, as CI reports them: a hash any of them made
        decides, whatever the order they are listed or finished in (two deliveries at once may each start one,
        and the one listed last may be the one that failed); else `pending` while one still runs; else None.
        Each is asked about once (`seen`); at most HASH_JOBS_PER_VERSION are listed, give or take such a race."""
        running: ObjectResult | None = None
        for hash_job in dict.fromkeys(s.hash_job_id for s in reversed(started) if s.hash_job_id):
            if hash_job in seen:
                continue
            found = self._find(target, hash_job, deadline)
            if found is None:
                continue
            seen[hash_job] = found
            decided = _by_file_job(job, target, state, found)
            if isinstance(decided, Check):
                return decided
            running = running or decided
        return running

    def _by_new_job(self, job: Job, target: OutputObject, state: ObjectState, store: ObjectStore,
                    deadline: Deadline, ledger: HashLedger, started: tuple[Started, ...],
                    seen: dict[str, FileJob]) -> Check | ObjectResult:
        """No job started for this version settles it (`seen` holds them as CI reports them): a new one, unless
        HASH_JOBS_PER_VERSION are started already: then `error`."""
        ours = [found for found in seen.values() if _hashes_version(found, state)]
        tried = {s.counted_as for s in started} | {found.job_id for found in ours}
        failed = [found for found in ours if found.state != "Success"]
        bound = self._settings.hash_jobs_per_version
        if len(tried) >= bound:
            return self._gave_up(job, target, state, store, deadline, failed, len(tried),
                                 ledger.where(target, state.etag))
        # Counted before it is started: a job the record cannot count is not started (raises: `error`, retried).
        token = ledger.reserve(target, state.etag, job.job_id, deadline)
        try:
            hash_job = self._submit(job, target, state, deadline)
        except (TransientError, StorageError):
            _release(ledger, target, state.etag, token, deadline)
            raise
        if isinstance(hash_job, Check):
            _release(ledger, target, state.etag, token, deadline)
            return hash_job
        notes = [f"CI's FileHashCode job {job_.job_id} failed ({(job_.message or job_.state).rstrip('.')}): started "
                 f"another, {len(tried) + 1} of the {bound} HASH_JOBS_PER_VERSION allows" for job_ in failed[-1:]]
        try:
            ledger.fill(target, state.etag, token, hash_job, deadline)
        except (TransientError, StorageError) as exc:
            notes.append(f"the record of the hash jobs started for this version counts this one but does not name "
                         f"it: {exc}")
        result = self._mark(_pending(target, state, hash_job), job.job_id, hash_job, store, deadline)
        return dataclasses.replace(result, notes=(*notes, *result.notes))

    def _submit(self, job: Job, target: OutputObject, state: ObjectState, deadline: Deadline) -> str | Check:
        """The new file job's id, or an `error` check when its UserData cannot be written."""
        assert target.expected_md5 is not None
        end = int(job.end_time.timestamp()) if job.end_time is not None else None
        user_data = encode(Ticket(job.job_id, job.tag, target.bucket, target.key, state.etag, target.expected_md5,
                                  end))
        if user_data is None:  # cannot happen with CI's ids and COS's names; say so and hash here
            return Check(target, Verdict.ERROR, Method.NONE, "the FileHashCode job's UserData would exceed 1,024 "
                                                             "characters; set VERIFY_MODE=auto for this bucket")
        hash_job = self.hashing.submit(target, user_data, deadline)
        log.info("FileHashCode job submitted", jobId=job.job_id, hashJobId=hash_job, bucket=target.bucket,
                 key=target.key, size=state.size)
        return hash_job

    def _gave_up(self, job: Job, target: OutputObject, state: ObjectState, store: ObjectStore, deadline: Deadline,
                 failed: list[FileJob], tried: int, record: OutputObject) -> ObjectResult:
        """No job settled this version and no other may start: `error`, and no `pending` tag any more."""
        last = failed[-1] if failed else None
        why = (f"CI's FileHashCode job {last.job_id} failed: {(last.message or last.state).rstrip('.')}" if last
               else "CI reports no result of the FileHashCode jobs started for it")
        reason = (f"CI could not hash this version: {why}; {tried} jobs were started for it, and "
                  f"HASH_JOBS_PER_VERSION={self._settings.hash_jobs_per_version} allows no more (they are listed in "
                  f"{record.bucket}/{record.key}): fix the cause (an archived object must be restored), then delete "
                  "that record for another try")
        log.error("no more FileHashCode jobs for this version of the object", jobId=job.job_id,
                  bucket=target.bucket, key=target.key, etag=state.etag, hashJobs=tried, reason=why)
        check = Check(target, Verdict.ERROR, Method.NONE, reason, state)
        if "tag" not in self._settings.action_verified | self._settings.action_failed:
            return ObjectResult(check)
        return clear_pending(check, job.job_id, store, deadline)

    def _earlier_jobs(self, job: Job, target: OutputObject, read_tags: TagReader, deadline: Deadline,
                      hashed: FileJob | None) -> Iterator[FileJob]:
        """The file job whose callback this is, then the one an earlier delivery started on this object (its
        `ci-hash-job` tag names it, pending or finished) as CI tells: a replay or the sweep then reuses its hash
        instead of paying for another. Each is asked for only when the one before settled nothing."""
        if hashed is not None:
            yield hashed
        tags = read_tags() or {}
        hash_job = tags.get(HASH_JOB_TAG)
        if not hash_job or tags.get(JOB_TAG) != job.job_id or (hashed is not None and hash_job == hashed.job_id):
            return
        found = self._find(target, hash_job, deadline)
        ticket = decode(found.user_data) if found is not None else None
        if found is not None and ticket is not None and ticket.job_id == job.job_id:
            yield found

    def hashed_by(self, job: Job, target: OutputObject, deadline: Deadline,
                  hashed: FileJob | None = None) -> Callable[[Mapping[str, str]], str | None]:
        """For a copy an earlier delivery moved (handlers/actions/moves.py): CI's MD5 of the output, when the copy's
        tags say it is this job's and name the FileHashCode job that hashed it, and CI's account of that job
        (`hashed` when it is the one whose callback this is) names this job and key. So a move whose action
        wrote no verdict tag is known without reading the copy's bytes. Raises TransientError, StorageError."""
        def md5_of(tags: Mapping[str, str]) -> str | None:
            hash_job = tags.get(HASH_JOB_TAG)
            if not hash_job or tags.get(JOB_TAG) != job.job_id:
                return None
            found = hashed if hashed is not None and hashed.job_id == hash_job else self._find(
                target, hash_job, deadline)
            return _md5_for(job, target, found)
        return md5_of

    def _find(self, target: OutputObject, hash_job: str, deadline: Deadline) -> FileJob | None:
        """CI's account of a file job this function started on this object; None when CI does not know it, or
        it hashes another object."""
        found = self.hashing.describe(target.bucket, target.region, hash_job, deadline)
        if found is None or found.bucket not in ("", target.bucket):
            return None
        ticket = decode(found.user_data)
        return found if ticket is not None and ticket.names(target.key) else None

    def _mark(self, pending: Check, job_id: str, hash_job: str, store: ObjectStore,
              deadline: Deadline) -> ObjectResult:
        """Tag the object pending with the file job's id, so that a lost callback can be made good."""
        settings = self._settings
        if "tag" not in settings.action_verified | settings.action_failed:
            return ObjectResult(pending)
        return mark(pending, job_id, hash_job, store, deadline)


def _keep_listed(ledger: HashLedger, target: OutputObject, etag: str, hash_job: str, job_id: str,
                 deadline: Deadline) -> None:
    """The job whose callback this is, listed in the version's record if a concurrent write lost it; a record
    that cannot be read or written changes no verdict (the callback's own answer stands)."""
    try:
        ledger.ensure_listed(target, etag, hash_job, job_id, deadline)
    except (TransientError, StorageError) as exc:
        log.warning("the FileHashCode job that hashed the object could not be listed in its record",
                    hashJobId=hash_job, reason=str(exc))


def _release(ledger: HashLedger, target: OutputObject, etag: str, token: str, deadline: Deadline) -> None:
    """Take back the reservation of a job CI did not start; one that stays only counts against the bound."""
    try:
        ledger.release(target, etag, token, deadline)
    except (TransientError, StorageError) as exc:
        log.warning("the reservation of a FileHashCode job CI did not start was not taken back", key=target.key,
                    etag=etag, reason=str(exc))



def _by_file_job(job: Job, target: OutputObject, state: ObjectState, found: FileJob) -> Check | ObjectResult | None:
    """What a file job CI reports settles for the version there now: its verdict (Success), `pending` (still
    running); None when it hashed another version, or failed."""
    if not _hashes_version(found, state):
        return None
    if found.state == "Success" and len(found.md5) == 32:
        return _by_ci(decide_by_content(target, state, found.md5, job.end_time), f"FileHashCode job {found.job_id}")
    if found.running:
        return ObjectResult(_pending(target, state, found.job_id))
    log.warning("CI's FileHashCode job did not hash the object", jobId=job.job_id, hashJobId=found.job_id,
                state=found.state, reason=found.message)
    return None


def _md5_for(job: Job, target: OutputObject, found: FileJob | None) -> str | None:
    """The MD5 CI computed in a finished file job this function started for `job`'s output `target`."""
    ticket = decode(found.user_data) if found is not None else None
    if found is None or ticket is None or ticket.job_id != job.job_id or not ticket.names(target.key):
        return None
    if found.bucket not in ("", target.bucket) or found.state != "Success" or len(found.md5) != 32:
        return None
    return found.md5 if not found.etag or found.etag == ticket.etag else None


def _hashes_version(found: FileJob, state: ObjectState) -> bool:
    """Whether the file job was started for (and, once finished, hashed) the version HEAD sees."""
    ticket = decode(found.user_data)
    return ticket is not None and ticket.etag == state.etag and (not found.etag or found.etag == state.etag)


def _written_after(state: ObjectState, job_end: datetime | None) -> bool:
    return job_end is not None and state.last_modified > job_end + SUPERSEDED_AFTER


def _superseded(target: OutputObject, state: ObjectState, job: Job, hashed: FileJob | None) -> Check:
    ended = job.end_time.isoformat() if job.end_time is not None else "?"
    late = f"CI's FileHashCode job {hashed.job_id} hashed an earlier version; " if hashed is not None else ""
    return Check(target, Verdict.SUPERSEDED, Method.NONE,
                 f"{late}the object was rewritten at {state.last_modified.isoformat()}, after the job ended "
                 f"({ended}): it belongs to a later job, and nothing of this job's is written on it", state)


def _pending(target: OutputObject, state: ObjectState, hash_job: str) -> Check:
    return Check(target, Verdict.PENDING, Method.NONE, f"CI's FileHashCode job {hash_job} is hashing its "
                 f"{state.size} bytes; its callback completes the verdict", state)


def _by_ci(check: Check, how: str) -> Check:
    """The verdict as the function's own content hash would give it, saying that CI hashed the bytes."""
    said = f"hashed by CI ({how})"
    return dataclasses.replace(check, reason=f"{check.reason}; {said}" if check.reason else said)
