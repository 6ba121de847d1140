"""Run a callback's jobs: check every output in parallel, act on the verdicts, sum up.

Per object the critical path is three round trips: HEAD (with the tag read beside it), the
tag write, then the tag read-back that catches a concurrent writer beside the HEAD that
proves the tags landed on the version checked (handlers/actions/tag.py: COS has no conditional
tagging).
Content hashing adds one streamed GET (and a fresh tag read) only when the ETag cannot
decide; a move adds its own steps (handlers/actions/moves.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from handlers.actions.moves import find_moved, move
from handlers.actions.policy import movable, reads_tags, tags_on
from handlers.actions.tag import Beside, R, TagReader, tag
from handlers.checking.outcome import outcome_of
from handlers.checking.reads import ContentReader, Inspected
from handlers.checking.verify import check_object
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import all_outputs, unplaced_reason
from handlers.intake.models import Callback, Check, Job, JobResult, Method, ObjectResult, OutputObject, Verdict
from handlers.storage.cos import ObjectStore
from handlers.storage.tags import JOB_TAG, VERIFY_TAG

if TYPE_CHECKING:
    from handlers.checking.serverhash import ServerHash
    from handlers.ci.filehash import FileJob

# Verdicts about the bytes that stand until the object changes.
SETTLED = frozenset({Verdict.VERIFIED, Verdict.MISMATCH, Verdict.UNVERIFIABLE})
# Verdicts about the key that leave open whether an earlier delivery moved the job's output away from it.
_MAYBE_MOVED = frozenset({Verdict.MISSING, Verdict.SUPERSEDED})


class Processor:
    """Owns the worker pools; one per warm container, reused across invocations."""

    def __init__(self, settings: Settings, store: ObjectStore, reader: ContentReader):
        self._settings = settings
        self._store = store
        self._reader = reader
        self._checks = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="check")
        # Tag reads wait on nothing, so a pool of their own can never deadlock the checks.
        self._tag_reads = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="tags")
        self._server: ServerHash | None = None  # VERIFY_MODE=server, and FileHashCode callbacks: made when needed
        self._server_lock = threading.Lock()

    def server_hash(self) -> ServerHash:
        with self._server_lock:
            if self._server is None:
                from handlers.checking.serverhash import ServerHash
                from handlers.ci.filehash import CiHashing
                from handlers.storage.clients import Clients
                self._server = ServerHash(CiHashing(Clients(self._settings), self._settings), self._settings)
            return self._server

    def finish_hashed(self, job: Job, target: OutputObject, deadline: Deadline, hashed: FileJob) -> ObjectResult:
        """One output of `job` whose FileHashCode job CI reports as `hashed` (handlers/checking/serverhash.py)."""
        return self._one(job, target, self._store.bound(deadline), self._reader.bound(deadline), deadline, hashed)

    def close(self) -> None:
        self._checks.shutdown(wait=False)
        self._tag_reads.shutdown(wait=False)

    def run(self, callback: Callback, deadline: Deadline) -> list[JobResult]:
        store, reader = self._store.bound(deadline), self._reader.bound(deadline)
        pending = []
        for job in callback.jobs_detail:
            targets = all_outputs(job) if job.succeeded else ()
            futures = [self._checks.submit(self._one, job, t, store, reader, deadline) for t in targets]
            pending.append((job, futures))
        results = []
        for job, futures in pending:
            objects = tuple(f.result() for f in futures)
            results.append(JobResult(job, outcome_of(job, objects), objects))
        return results

    def _one(self, job: Job, target: OutputObject, store: ObjectStore, reader: ContentReader, deadline: Deadline,
             hashed: FileJob | None = None) -> ObjectResult:
        settings = self._settings
        inspected = Inspected(store, reader)
        if not target.placed:  # nowhere to look, so nothing to tag either
            return ObjectResult(Check(target, Verdict.UNVERIFIABLE, Method.NONE, unplaced_reason(target)))
        tags: Future[dict[str, str] | None] | None = None
        if reads_tags(settings):
            tags = self._tag_reads.submit(
                retrying, lambda: store.tags(target), deadline)
        end = job.end_time
        if settings.verify_mode == "server" or hashed is not None:
            by_ci = self.server_hash().check(job, target, store, deadline, _result_of(tags), hashed)
            if isinstance(by_ci, ObjectResult):
                return by_ci  # pending: the FileHashCode job's callback finishes it
            check = by_ci
        else:
            check = check_object(target, inspected, settings.verify_mode, end, deadline)
        if check.verdict in _MAYBE_MOVED and target.expected_md5 is not None:
            # Missing, or holding a version written after the job ended (a later job reusing the key): either
            # way an earlier delivery of this job may have moved its output, and then that move is the answer.
            # The version at the key now is another job's and is left alone (our tags go on the copy only).
            server = settings.verify_mode == "server" or hashed is not None
            hashed_by = self.server_hash().hashed_by(job, target, deadline, hashed) if server else None
            moved = find_moved(target, job.job_id, store, inspected, settings, deadline, hashed_by)
            if moved is not None:
                return moved  # an earlier delivery moved it: report what that delivery did
        return self._act(check, job.job_id, _result_of(tags), store, inspected, deadline)

    def _act(self, check: Check, job_id: str, read_tags: TagReader, store: ObjectStore, inspected: Inspected,
             deadline: Deadline) -> ObjectResult:
        settings = self._settings
        if movable(check.verdict, settings):
            moved = move(check, job_id, read_tags, tags_on(check.verdict, settings), store, inspected, settings,
                         deadline)
            if moved.error and _hashed_while_pending(check, job_id, read_tags):
                # The move did not happen (a destination with other bytes blocks it for good) but the hash is
                # over: the source must not keep announcing it. Its verdict replaces `pending` where the action
                # tags, else `pending` comes off; the answer still reports the move's failure.
                return _joined(moved, self._unpend(check, job_id, read_tags, store, deadline))
            return moved
        if tags_on(check.verdict, settings):
            return tag(check, job_id, read_tags, store, deadline, beside=self._beside(deadline))
        if _hashed_while_pending(check, job_id, read_tags):
            # VERIFY_MODE=server tagged it `pending` while CI hashed it; the verdict's action writes no tag over
            # that, and `pending` must not outlive the hash it announced.
            return self._unpend(check, job_id, read_tags, store, deadline)
        return ObjectResult(check)

    def _unpend(self, check: Check, job_id: str, read_tags: TagReader, store: ObjectStore,
                deadline: Deadline) -> ObjectResult:
        """The object in place with our `pending` replaced by its verdict (the action tags), or taken off."""
        if tags_on(check.verdict, self._settings):
            return tag(check, job_id, read_tags, store, deadline, beside=self._beside(deadline))
        from handlers.checking.pending import clear_pending
        return clear_pending(check, job_id, store, deadline)

    def _beside(self, deadline: Deadline) -> Beside:
        def start(read: Callable[[], R]) -> Callable[[], R]:
            return self._tag_reads.submit(retrying, read, deadline).result
        return start


def _joined(failed: ObjectResult, after: ObjectResult) -> ObjectResult:
    """A failed action's result with what was done after it; the first failure is the one reported."""
    return ObjectResult(failed.check, actions=(*failed.actions, *after.actions), notes=(
        *failed.notes, *after.notes, *([f"then: {after.error}"] if after.error else [])), error=failed.error)


def _hashed_while_pending(check: Check, job_id: str, read_tags: TagReader) -> bool:
    """Whether the object carries this job's `pending` and the hash it announced has decided the verdict.
    Tags that cannot be read say nothing: the verdict stands, and a `pending` left there is taken off by the
    next delivery or sweep tick, which find the job unfinished by it."""
    if check.verdict not in SETTLED or check.state is None:
        return False
    try:
        return _pending_of(job_id, read_tags())
    except (TransientError, StorageError):
        return False


def _pending_of(job_id: str, tags: dict[str, str] | None) -> bool:
    """Whether the tags carry this job's `pending` (VERIFY_MODE=server, a hash job announced)."""
    return tags is not None and tags.get(VERIFY_TAG) == Verdict.PENDING.value and tags.get(JOB_TAG) == job_id


def _result_of(future: Future[dict[str, str] | None] | None) -> Callable[[], dict[str, str] | None]:
    def read() -> dict[str, str] | None:
        return future.result() if future is not None else {}
    return read
