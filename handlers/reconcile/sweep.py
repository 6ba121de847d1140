"""The reconciliation sweep: find the jobs whose callback was lost, and check them.

For each configured bucket, each of its media queues (RECONCILE_QUEUES, or CI's queue API) and each
configured tag, one list is swept under a lease (handlers/reconcile/lease.py):

1. its checkpoint (handlers/reconcile/checkpoint.py) says up to which CreationTime CI's list was read,
   and which of those jobs are not settled yet (held); the held ones are looked at again, as CI reports
   them now (ten to a request), and CI's list (every state, oldest first) is read on from where the
   last tick stopped, never from further back than RECONCILE_WINDOW_MINUTES, a day at a time;
2. a job the checkpoint knows, a failed or cancelled one, or one without outputs costs nothing more;
   an unfinished one is held (CI lists a job by its CreationTime, and it may finish long after);
   every other job costs one HEAD of its settled marker (handlers/operations/settled.py);
3. the jobs not settled are checked here, side by side (handlers/reconcile/checks.py), as CI listed
   them (asking CI again would prove nothing); those beyond what this invocation can finish in good
   time go to asynchronous invocations of this function (`hand_off`, in batches sized to finish well
   inside their own time limit);
4. the checkpoint moves on to where the listing got, holding the jobs not settled, and is written back.

A tick that runs out of time says what it left; the next one resumes from the checkpoint.
Running beside callbacks, other ticks and workers is safe: every action is idempotent, and the
checkpoint only ever claims what is true.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Protocol

from handlers import log
from handlers.ci.jobs import MAX_IDS_PER_REQUEST, CiAnswer, CiUnavailable, JobPage, describe_jobs
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import output_objects
from handlers.intake.models import Job, ObjectState, OutputObject
from handlers.intake.nodes import MalformedCallback
from handlers.operations.settled import marker_at, needs_no_marker, settled_now
from handlers.reconcile import checkpoint as cp
from handlers.reconcile import lease
from handlers.reconcile.checks import Checked, Checker, JobNotChecked, JobRunner, JobSkipped
from handlers.storage.records import state_prefix

__all__ = ["JobNotChecked", "JobSkipped", "ListRef", "Period", "Sweep", "SweepReport"]

CI_TIME = "%Y-%m-%dT%H:%M:%S%z"
# DescribeMediaJobs documents no longest period per request and no retention
# (https://cloud.tencent.com/document/api/460/84766, https://cloud.tencent.com/document/api/436/49203):
# periods are listed a day at a time, so that no request depends on one, and progress is kept per day.
LIST_SPAN = timedelta(days=1)
EXAMPLES = 3  # the tick's log line names at most this many of each kind: it stays one line at any scale
SCF_ASYNC_ATTEMPTS = 3  # an asynchronous invocation that fails is tried twice more (DESIGN: SCF retries)
SCF_RETRY_GAP = timedelta(minutes=1)  # about a minute apart
INVOKES_PER_SECOND = 50  # the Invoke API takes at most 100 a second for the account: half, for callbacks
MAX_BATCH = 1000  # job ids per worker: ~40 KB of the 128 KB an asynchronous event may carry
INVOKE_SECONDS = 2.0  # the least time left to hand a batch off (handlers/intake/dispatch.invoke_timeout: half of it)


class JobLister(Protocol):
    def list_queues(self, bucket: str, region: str) -> list[str]: ...

    def describe(self, bucket: str, region: str, job_ids: tuple[str, ...]) -> CiAnswer: ...

    def list_jobs(self, bucket: str, region: str, queue_id: str, tag: str, start: str, end: str,
                  next_token: str, states: str = "Success",
                  known: Callable[[str], bool] | None = None) -> JobPage: ...


class StateStore(Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def tags(self, target: OutputObject) -> dict[str, str] | None: ...
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...
    def delete(self, target: OutputObject) -> None: ...


@dataclass(frozen=True)
class ListRef:
    bucket: str
    region: str
    queue_id: str
    tag: str

    def label(self) -> str:
        return f"{self.bucket} {self.queue_id} {self.tag}"


@dataclass(frozen=True)
class Period:
    """The jobs a sweep looks at: created after `since` and before `end`; `kind` names its checkpoint."""

    since: datetime
    end: datetime
    kind: str = "sweep"  # "sweep" | "backfill"


# Hands jobs to an asynchronous invocation of this function: (list, job ids, until) -> its request id.
# Raises TransientError or StorageError when SCF does not take them.
HandOff = Callable[[ListRef, list[str], datetime], str]
Allowed = Callable[[Job], str | None]  # the reason a job is outside the allow-lists, or None


@dataclass
class SweepReport:
    """What a tick did, as counts and a few examples: its log line is one line whatever the scale."""

    queues: int = 0
    lists: int = 0
    listed: int = 0
    pages: int = 0
    settled_before: int = 0  # known to the checkpoint: not even a HEAD (counted in alreadyDone too)
    already_done: int = 0  # a HEAD found its settled marker
    nothing_to_check: int = 0  # failed, cancelled, without outputs, or outside the allow-lists
    unfinished: int = 0
    in_hands: int = 0  # a worker has them
    looked_again: int = 0  # held by the last tick, read back from CI
    held: int = 0  # not settled at the end of the tick: looked at again by the next
    rechecked: int = 0  # settled before, looked at again: a later job wrote one of their outputs
    checked: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    handed_off: int = 0
    workers: int = 0
    left_unchecked: int = 0
    unlisted: list[str] = field(default_factory=list)  # lists not read to the end: "<list> from <time>"
    busy: list[str] = field(default_factory=list)  # lists another invocation holds
    given_up: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    retry: int = 0  # jobs checked that need another try

    @property
    def stopped_early(self) -> bool:
        return bool(self.left_unchecked or self.unlisted)

    @property
    def troubled(self) -> bool:
        return bool(self.errors or self.unreadable or self.too_large or self.retry or self.given_up
                     or self.stopped_early)

    def as_dict(self) -> dict[str, Any]:
        return {"queues": self.queues, "lists": self.lists, "listed": self.listed, "pages": self.pages,
                "alreadyDone": self.settled_before + self.already_done, "settledBefore": self.settled_before,
                "nothingToCheck": self.nothing_to_check, "unfinished": self.unfinished, "inHands": self.in_hands,
                "lookedAgain": self.looked_again, "held": self.held,
                "rechecked": self.rechecked, "checked": self.checked, "outcomes": sorted(self.outcomes),
                "outcomeCounts": dict(sorted(self.outcomes.items())),
                "handedOff": self.handed_off, "workers": self.workers,
                # What a tick that ran out of time left (flat: CLS indexes a JSON line's first level only).
                "stoppedEarly": self.stopped_early, "leftUnchecked": self.left_unchecked,
                "unlistedLists": len(self.unlisted), "unlisted": self.unlisted[:EXAMPLES],
                "busy": self.busy[:EXAMPLES], "busyCount": len(self.busy),
                "givenUp": self.given_up[:EXAMPLES], "givenUpCount": len(self.given_up),
                "unreadable": self.unreadable[:EXAMPLES], "unreadableCount": len(self.unreadable),
                "errors": self.errors[:EXAMPLES], "errorCount": len(self.errors),
                # Outputs no tick can hash as configured (see the reason in their "object checked" line).
                "tooLarge": self.too_large[:EXAMPLES], "tooLargeCount": len(self.too_large)}


class Sweep:
    def __init__(self, settings: Settings, run_job: JobRunner, lister: JobLister, store: StateStore,
                 me: str, allowed: Allowed | None = None, hand_off: HandOff | None = None,
                 max_workers: int = 0):
        self._settings = settings
        self._run_job = run_job
        self._lister = lister
        self._store = store
        self._me = me or f"local-{uuid.uuid4().hex[:12]}"
        self._allowed = allowed or (lambda job: None)
        self._hand_off = hand_off
        self._workers_left = max_workers if hand_off is not None else 0
        self._prefix = state_prefix(settings.report_prefix)
        self._last_invoke = 0.0

    # --- the tick -------------------------------------------------------------------------------

    def run(self, deadline: Deadline, now: datetime | None = None) -> SweepReport:
        """One tick over every configured list, within the window."""
        now = now or datetime.now(timezone.utc)
        # CI's bounds are strict and to the second: end one second on, so a job of this very second counts.
        period = Period(now - timedelta(minutes=self._settings.reconcile_window_minutes), now + timedelta(seconds=1))
        return self.run_period(period, deadline, now)

    def run_period(self, period: Period, deadline: Deadline, now: datetime | None = None) -> SweepReport:
        """Every configured bucket, queue and tag, within `period` (the window, or a backfill's)."""
        now = now or datetime.now(timezone.utc)
        report = SweepReport()
        for bucket, region in self._settings.reconcile_buckets:
            queues = self._queues(bucket, region, deadline, report)
            report.queues += len(queues)
            for queue_id in queues:
                for tag in self._settings.reconcile_tags:
                    self.sweep_list(ListRef(bucket, region, queue_id, tag), period, deadline, report, now)
        return report

    def _queues(self, bucket: str, region: str, deadline: Deadline, report: SweepReport) -> list[str]:
        """The queues to list in: the configured ones, else those CI's queue API names (asked once)."""
        configured = self._settings.queues_for(bucket)
        if configured:
            return list(configured)
        try:
            return retrying(partial(self._lister.list_queues, bucket, region), deadline)
        except (TransientError, StorageError) as exc:
            report.errors.append(f"listing the media queues of {bucket}: {exc}")
            return []

    # --- one list -------------------------------------------------------------------------------

    def sweep_list(self, ref: ListRef, period: Period, deadline: Deadline, report: SweepReport,
                   now: datetime | None = None) -> None:
        """Sweep one list within `period`, under its lease, from its checkpoint on."""
        now = now or datetime.now(timezone.utc)
        report.lists += 1
        where = cp.location(ref.bucket, ref.region, self._prefix, period.kind, ref.queue_id, ref.tag)
        held = lease.lease_of(where)
        until = now + timedelta(seconds=deadline.remaining())
        try:
            other = lease.acquire(self._store, held, self._me, until, deadline, now)
        except (TransientError, StorageError) as exc:
            report.errors.append(f"{ref.label()}: the lease could not be taken: {exc}")
            return
        if other is not None:
            report.busy.append(f"{ref.label()}: {other.holder} until {other.until.strftime(CI_TIME)}")
            return
        try:
            _ListSweep(self, ref, period, deadline, report, now, where).run()
        finally:
            try:
                lease.release(self._store, held, self._me, deadline)
            except (TransientError, StorageError):
                pass  # it runs out at `until`


class _ListSweep:
    """The state of sweeping one list in one invocation."""

    def __init__(self, sweep: Sweep, ref: ListRef, period: Period, deadline: Deadline, report: SweepReport,
                 now: datetime, where: OutputObject):
        self.sweep, self.ref, self.period, self.report, self.now, self.where = sweep, ref, period, report, now, where
        s = sweep._settings
        self.deadline = deadline
        budget = deadline.budget or deadline.remaining()
        # Kept for writing the checkpoint back and releasing the lease, whatever the checks do.
        self.closing = max(1.0, min(5.0, budget * 0.1))
        self.work = Deadline(deadline.at - self.closing, budget)
        self.reserve = min(max(2.0, s.cos_timeout), budget / 4)  # time to finish a job under way
        self.checker = Checker(sweep._run_job, s.concurrency, self.work, self.reserve)
        self.heads = ThreadPoolExecutor(s.concurrency, thread_name_prefix="settled")
        self.seen = cp.Observations()
        self.batch: list[Job] = []
        self.rechecks: set[str] = set()  # settled jobs a later job's outputs call into question

    def run(self) -> None:
        try:
            checkpoint = self._load()
            self._look_again(checkpoint)
            listed_to = self._list(checkpoint)
            self._recheck()
            self._flush()
            self._collect(self.checker.drain())
            self._save(checkpoint, listed_to)
        finally:
            self.checker.close()
            self.heads.shutdown(wait=False)

    def _load(self) -> cp.Checkpoint:
        try:
            stored = cp.load(self.sweep._store, self.where, self.deadline)
        except cp.BadCheckpoint as exc:
            self.report.errors.append(f"{self.ref.label()}: the checkpoint {self.where.key} cannot be read ({exc}): "
                                      "starting from the period's start; it is written anew")
            stored = None
        except (TransientError, StorageError) as exc:
            self.report.errors.append(f"{self.ref.label()}: the checkpoint could not be read ({exc}): "
                                      "starting from the period's start")
            stored = None
        checkpoint, given_up = cp.covering(stored, self.period.since)
        # Held longer than the period: running longer than the window, or a check failing for that long.
        # No longer looked at (the backfill can).
        self.report.given_up.extend(f"{self.ref.label()} {job_id}" for job_id in given_up)
        if stored is not None and stored.listed_through < self.period.since:
            self.report.given_up.append(f"{self.ref.label()}: no tick listed the jobs created from "
                                        f"{stored.listed_through.strftime(CI_TIME)} to "
                                        f"{self.period.since.strftime(CI_TIME)}")
        return checkpoint

    # --- the held jobs, by id ---------------------------------------------------------------------

    def _look_again(self, checkpoint: cp.Checkpoint) -> None:
        """The jobs held by the last tick, oldest first: those in a worker's hands by their marker; the
        others as CI reports them now (ten to a request), then like any listed job."""
        held = sorted(checkpoint.held.items(), key=lambda item: item[1])
        hands = [(i, c) for i, c in held if cp.in_hands(checkpoint, i, self.now)]
        others = [(i, c) for i, c in held if not cp.in_hands(checkpoint, i, self.now)]
        prefix = self.sweep._prefix
        for (job_id, created), done in zip(hands, self.heads.map(
                lambda item: self._marked(marker_at(self.ref.bucket, self.ref.region, item[0], prefix)), hands),
                strict=True):
            if done:
                self.report.already_done += 1
                self.seen.settle(job_id, created)
            else:
                self.report.in_hands += 1
                self.seen.hold(job_id, created)
        for start in range(0, len(others), MAX_IDS_PER_REQUEST):
            chunk = others[start:start + MAX_IDS_PER_REQUEST]
            if self.work.remaining() < self.reserve:
                return  # still held: the next tick starts with them
            try:
                answer = retrying(partial(self.sweep._lister.describe, self.ref.bucket, self.ref.region,
                                          tuple(i for i, _ in chunk)), self.work)
            except (TransientError, StorageError, MalformedCallback) as exc:
                self.report.errors.append(f"{self.ref.label()}: held jobs could not be read back from CI: {exc}")
                return
            self.report.looked_again += len(chunk)
            for job_id, created in chunk:
                if job_id not in answer.jobs:  # CI no longer knows it: nothing left to check
                    self.report.given_up.append(f"{self.ref.label()} {job_id} (unknown to CI now)")
                    self.seen.settle(job_id, created)
            self._handle([answer.jobs[i] for i, _ in chunk if i in answer.jobs], checkpoint)

    def _marked(self, where: OutputObject) -> bool:
        try:
            return retrying(partial(self.sweep._store.head, where), self.work) is not None
        except (TransientError, StorageError):
            return False

    # --- listing ----------------------------------------------------------------------------------

    def _list(self, checkpoint: cp.Checkpoint) -> datetime:
        """Read the list from where the last tick stopped, handling each page; returns the CreationTime up
        to which every job was listed."""
        start = checkpoint.listed_through
        end = self.period.end
        covered = start
        while start < end:
            stop = min(end, start + LIST_SPAN)
            token = ""
            while True:
                if self.work.remaining() < self.reserve or self._held() >= cp.MAX_HELD:
                    self.report.unlisted.append(f"{self.ref.label()} from {covered.strftime(CI_TIME)}")
                    return covered
                try:
                    page = retrying(partial(
                        self.sweep._lister.list_jobs, self.ref.bucket, self.ref.region, self.ref.queue_id,
                        self.ref.tag, start.strftime(CI_TIME), stop.strftime(CI_TIME), token, "All",
                        lambda job_id: job_id in checkpoint.settled or job_id in self.seen.settled), self.work)
                except (TransientError, StorageError) as exc:
                    self.report.errors.append(f"listing {self.ref.tag} jobs of {self.ref.bucket} in queue "
                                              f"{self.ref.queue_id}: {exc}")
                    self.report.unlisted.append(f"{self.ref.label()} from {covered.strftime(CI_TIME)}")
                    return covered
                self.report.pages += 1
                self._page(page, checkpoint)
                token = page.next_token
                if not token:
                    break
                covered = cp.frontier(False, page.last_created, covered, end, self.now)
            # The slice is read to its end: every job created before `stop` is listed.
            covered = cp.frontier(True, None, covered, stop, self.now)
            start = stop - cp.SECOND  # the next slice starts with the second `stop` (bounds are strict)
            if stop >= end or covered < stop - cp.SECOND:
                break  # past the edge: the jobs of the last minutes are listed again next time
        return covered

    def _held(self) -> int:
        return len(self.seen.unsettled)

    def _page(self, page: JobPage, checkpoint: cp.Checkpoint) -> None:
        report = self.report
        report.listed += len(page.jobs) + len(page.known)
        report.settled_before += len(page.known)
        report.unreadable.extend(page.unreadable)
        self._handle(list(page.jobs), checkpoint)

    def _handle(self, jobs: list[Job], checkpoint: cp.Checkpoint) -> None:
        """Sort jobs CI reported: nothing to do, unfinished (held), or a marker to look for, then a check."""
        report = self.report
        candidates = []
        for job in jobs:
            created = job.creation_time
            if created is None:
                continue  # CI lists by CreationTime: only an unreadable one lacks it
            if job.unfinished:
                report.unfinished += 1
                self.seen.hold(job.job_id, created)
            elif needs_no_marker(job):
                report.nothing_to_check += 1
                self.seen.settle(job.job_id, created)
            elif (reason := self.sweep._allowed(job)) is not None:
                report.nothing_to_check += 1
                log.warning("sweep skipped a job outside the allow-lists", jobId=job.job_id, reason=reason)
                self.seen.settle(job.job_id, created)
            else:
                candidates.append(job)
        # Each job is scheduled as soon as its HEAD answers: checks start while the other HEADs run.
        heads = {self.heads.submit(self._settled, job): job for job in candidates}
        for future in as_completed(heads):
            job, done = heads[future], future.result()
            created = job.creation_time
            assert created is not None
            if done:
                report.already_done += 1
                self.seen.settle(job.job_id, created)
            elif done is None:
                report.left_unchecked += 1  # no time left even to look
                self.seen.hold(job.job_id, created)
            elif cp.in_hands(checkpoint, job.job_id, self.now):
                report.in_hands += 1
                self.seen.hold(job.job_id, created)
            else:
                self.seen.hold(job.job_id, created)
                self._schedule(job)
            self._index(job, checkpoint)

    def _index(self, job: Job, checkpoint: cp.Checkpoint) -> None:
        """Remember which job of the period wrote each output; an earlier job whose output this one
        writes again is looked at again once settled (its report would name bytes that are gone)."""
        created = job.creation_time
        assert created is not None
        for target in output_objects(job):
            key = f"{target.bucket}/{target.key}"
            writer = self.seen.outputs.get(key) or checkpoint.outputs.get(key)
            found = cp.earlier_writer({key: writer} if writer else {}, key, job.job_id, created)
            if found is None:
                self.seen.outputs[key] = (job.job_id, created)
                continue
            older, self.seen.outputs[key] = found
            older_created = created if older == job.job_id else writer[1] if writer else created
            if older in self.seen.settled or cp.is_settled(checkpoint, older, older_created):
                self.rechecks.add(older)

    def _recheck(self) -> None:
        """The settled jobs whose output a later job wrote again: through the pipeline once more, as CI
        reports them now (read back, ten to a request: rare, and no model is kept for it meanwhile)."""
        ids = tuple(sorted(self.rechecks))
        if not ids:
            return
        try:
            jobs = describe_jobs(self.sweep._lister.describe, self.ref.bucket, self.ref.region, ids, self.work)
        except CiUnavailable as exc:
            self.report.errors.append(f"{self.ref.label()}: jobs to look at again could not be read back: {exc}")
            return
        for job in jobs.values():
            self.report.rechecked += 1
            self.checker.submit(job)

    def _settled(self, job: Job) -> bool | None:
        """Whether the job's marker is there; None when no time is left to ask."""
        if self.work.remaining() < self.reserve:
            return None
        try:
            return settled_now(job, self.sweep._prefix, self.sweep._store, self.sweep._settings, self.work,
                               self.sweep._me)
        except (TransientError, StorageError):
            return False  # cannot tell: check it

    # --- checking here, or handing off ------------------------------------------------------------

    def _schedule(self, job: Job) -> None:
        """Here while this invocation has room; beyond, to a worker. With no worker to hand to, here
        all the same: a job the time does not reach is left for the next tick."""
        if self.sweep._workers_left <= 0 or self.checker.capacity() > 0:
            self.checker.submit(job)
            return
        self.batch.append(job)
        if len(self.batch) >= self._batch_size():
            self._flush()

    def _batch_size(self) -> int:
        """Jobs a worker finishes in half its time, as fast as this invocation checks them (the same
        function, the same configuration)."""
        budget = self.deadline.budget or self.deadline.remaining()
        return max(1, min(MAX_BATCH, int(self.checker.rate() * (budget - self.reserve - self.closing) * 0.5)))

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        hand_off = self.sweep._hand_off
        if hand_off is None or self.sweep._workers_left <= 0 or self.deadline.remaining() < INVOKE_SECONDS:
            self.report.left_unchecked += len(batch)
            return
        pause = 1 / INVOKES_PER_SECOND - (time.monotonic() - self.sweep._last_invoke)
        if pause > 0:
            time.sleep(pause)
        budget = self.deadline.budget or self.deadline.remaining()
        # The worker's time, and SCF's retries of it, before another tick takes the jobs back.
        until = datetime.now(timezone.utc) + SCF_ASYNC_ATTEMPTS * timedelta(seconds=budget) + \
            (SCF_ASYNC_ATTEMPTS - 1) * SCF_RETRY_GAP
        try:
            self.sweep._last_invoke = time.monotonic()
            invocation = hand_off(self.ref, [job.job_id for job in batch], until)
        except (TransientError, StorageError) as exc:
            self.report.errors.append(f"{self.ref.label()}: {len(batch)} jobs could not be handed to a worker: {exc}")
            self.report.left_unchecked += len(batch)
            return
        self.sweep._workers_left -= 1
        self.report.workers += 1
        self.report.handed_off += len(batch)
        for job in batch:
            assert job.creation_time is not None
            self.seen.handed_off[job.job_id] = cp.HandOff(until, invocation)
        log.info("reconcile batch handed to a worker", invocation=invocation, jobs=len(batch),
                 queueId=self.ref.queue_id, tag=self.ref.tag, bucket=self.ref.bucket)

    def _collect(self, checked: list[Checked]) -> None:
        report = self.report
        for one in checked:
            created = one.job.creation_time
            assert created is not None
            if not one.started:
                report.left_unchecked += 1
            elif one.skipped:
                report.nothing_to_check += 1
                log.warning("sweep skipped a job outside the allow-lists", jobId=one.job.job_id, reason=one.skipped)
            elif one.error:
                report.errors.append(f"job {one.job.job_id}: {one.error}")
            else:
                report.checked += len(one.results)
                for result in one.results:
                    report.outcomes[result.outcome.value] += 1
                    report.retry += result.outcome.value == "retry"
                    report.too_large.extend(f"{result.job.job_id} {o.check.target.bucket}/{o.check.target.key}"
                                            for o in result.objects if o.check.too_large)
                report.errors.extend(f"job {one.job.job_id}: {problem}" for problem in one.problems)
            if one.settled:
                self.seen.settle(one.job.job_id, created)
            else:
                self.seen.unsettled[one.job.job_id] = created  # a recheck that failed is held too

    # --- the checkpoint ---------------------------------------------------------------------------

    def _save(self, checkpoint: cp.Checkpoint, listed_to: datetime) -> None:
        moved = cp.advanced(checkpoint, self.seen, listed_to, self.now)
        self.report.held += len(moved.held)
        moved = replace(moved, updated_at=datetime.now(timezone.utc), updated_by=self.sweep._me,
                        last_tick={"listed": self.report.listed, "checked": self.report.checked,
                                   "handedOff": self.report.handed_off, "leftUnchecked": self.report.left_unchecked})
        try:
            cp.save(self.sweep._store, self.where, moved, self.ref.queue_id, self.ref.tag, self.deadline)
        except (TransientError, StorageError) as exc:
            self.report.errors.append(f"{self.ref.label()}: the checkpoint was not written ({exc}): the next tick "
                                      "looks at these jobs again")
