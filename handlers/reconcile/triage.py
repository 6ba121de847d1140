"""The jobs CI reports for one list, each seen through as plan.py decides: settled or held as listed, or its
settled marker looked for (CONCURRENCY HEADs at once) and then checked here, side by side (checks.py), or
batched for a worker (handoff.py). What becomes of each is kept in `seen` for the checkpoint, and counted
in the tick's report. The outputs each job writes are remembered, so that a later job writing an earlier
one's output again has the earlier one looked at again (`rechecks`)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime

from handlers import log
from handlers.ci.jobs import JobPage
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import output_objects
from handlers.intake.models import Job
from handlers.operations.settled import settled_now
from handlers.reconcile import checkpoint as cp
from handlers.reconcile import plan
from handlers.reconcile.checks import Checker
from handlers.reconcile.handoff import batch_size
from handlers.reconcile.listing import ListRef
from handlers.reconcile.means import Means
from handlers.reconcile.report import SweepReport, count_checked


class Triage:
    """The jobs of one list in one invocation, against its checkpoint as it was read."""

    def __init__(self, means: Means, ref: ListRef, checkpoint: cp.Checkpoint, report: SweepReport, now: datetime,
                 deadline: Deadline, work: Deadline, reserve: float, closing: float):
        self.means, self.ref, self.checkpoint, self.report, self.now = means, ref, checkpoint, report, now
        self.deadline, self.work, self.reserve, self.closing = deadline, work, reserve, closing
        concurrency = means.settings.concurrency
        self.checker = Checker(means.run_job, concurrency, work, reserve)
        self.heads = ThreadPoolExecutor(concurrency, thread_name_prefix="settled")
        self.seen = cp.Observations()
        self.batch: list[Job] = []
        self.rechecks: set[str] = set()  # settled jobs a later job's outputs call into question

    def close(self) -> None:
        self.checker.close()
        self.heads.shutdown(wait=False)

    def may_go_on(self) -> bool:
        """The listing goes on while there is time and the jobs held stay within what a checkpoint keeps
        (the held ones are looked at first)."""
        return self.work.remaining() >= self.reserve and len(self.seen.unsettled) < cp.MAX_HELD

    def known(self, job_id: str) -> bool:
        """Known settled: CI's page need not carry the job in full."""
        return job_id in self.checkpoint.settled or job_id in self.seen.settled

    def page(self, page: JobPage) -> None:
        report = self.report
        report.listed += len(page.jobs) + len(page.known)
        report.settled_before += len(page.known)
        report.unreadable.extend(page.unreadable)
        self.handle(list(page.jobs))

    def handle(self, jobs: list[Job]) -> None:
        """Sort jobs CI reported: nothing to do, unfinished (held), or a marker to look for, then a check."""
        report = self.report
        candidates = []
        for job in jobs:
            created = job.creation_time
            if created is None:
                continue  # CI lists by CreationTime: only an unreadable one lacks it
            listed, reason = plan.on_listing(job, self.means.allowed)
            if listed is plan.Listed.UNFINISHED:
                report.unfinished += 1
                self.seen.hold(job.job_id, created)
            elif listed is plan.Listed.NOTHING_TO_CHECK:
                report.nothing_to_check += 1
                self.seen.settle(job.job_id, created)
            elif listed is plan.Listed.OUTSIDE:
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
            looked = plan.after_look(done, cp.in_hands(self.checkpoint, job.job_id, self.now))
            if looked is plan.Looked.SETTLED:
                report.already_done += 1
                self.seen.settle(job.job_id, created)
            elif looked is plan.Looked.NO_TIME:
                report.left_unchecked += 1  # no time left even to look
                self.seen.hold(job.job_id, created)
            elif looked is plan.Looked.IN_HANDS:
                report.in_hands += 1
                self.seen.hold(job.job_id, created)
            else:
                self.seen.hold(job.job_id, created)
                self._schedule(job)
            self._index(job)

    def _index(self, job: Job) -> None:
        """Remember which job of the period wrote each output; an earlier job whose output this one
        writes again is looked at again once settled (its report would name bytes that are gone)."""
        created = job.creation_time
        assert created is not None
        for target in output_objects(job):
            key = f"{target.bucket}/{target.key}"
            writer = self.seen.outputs.get(key) or self.checkpoint.outputs.get(key)
            found = cp.earlier_writer({key: writer} if writer else {}, key, job.job_id, created)
            if found is None:
                self.seen.outputs[key] = (job.job_id, created)
                continue
            older, self.seen.outputs[key] = found
            older_created = created if older == job.job_id else writer[1] if writer else created
            if older in self.seen.settled or cp.is_settled(self.checkpoint, older, older_created):
                self.rechecks.add(older)

    def _settled(self, job: Job) -> bool | None:
        """Whether the job's marker is there; None when no time is left to ask."""
        if self.work.remaining() < self.reserve:
            return None
        m = self.means
        try:
            return settled_now(job, m.prefix, m.store, m.settings, self.work, m.me)
        except (TransientError, StorageError):
            return False  # cannot tell: check it

    # --- checking here, or handing off ------------------------------------------------------------

    def _schedule(self, job: Job) -> None:
        if plan.check_here(self.means.workers.left, self.checker.capacity()):
            self.checker.submit(job)
            return
        self.batch.append(job)
        budget = self.deadline.budget or self.deadline.remaining()
        if len(self.batch) >= batch_size(self.checker.rate(), budget, self.reserve, self.closing):
            self._flush()

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        if batch:
            self.means.workers.hand(self.ref, batch, self.deadline, self.report, self.seen)

    def finish(self) -> None:
        """Hand off the last batch, wait for the checks under way (each bounded by the time left), and
        count them."""
        self._flush()
        for one in self.checker.drain():
            created = one.job.creation_time
            assert created is not None
            count_checked(self.report, one)
            if one.settled:
                self.seen.settle(one.job.job_id, created)
            else:
                self.seen.unsettled[one.job.job_id] = created  # a recheck that failed is held too
