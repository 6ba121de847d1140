"""One list swept in one invocation (ListSweep): its checkpoint read, the jobs it held looked at again, CI's
list read on from where it stopped (listing.py), the jobs of both seen through (triage.py), the settled
jobs a later one wrote over looked at again, then the checkpoint moved on and written back."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from functools import partial

from handlers.ci.confirm import MAX_IDS_PER_REQUEST, CiUnavailable, describe_jobs
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import OutputObject
from handlers.intake.nodes import MalformedCallback
from handlers.operations.settled import marker_at
from handlers.reconcile import checkpoint as cp
from handlers.reconcile import plan
from handlers.reconcile.listing import CI_TIME, ListRef, Period, read_list
from handlers.reconcile.means import Means
from handlers.reconcile.report import SweepReport
from handlers.reconcile.triage import Triage


class ListSweep:
    """The state of sweeping one list in one invocation."""

    def __init__(self, means: Means, ref: ListRef, period: Period, deadline: Deadline, report: SweepReport,
                 now: datetime, where: OutputObject):
        self.means, self.ref, self.period, self.report, self.now, self.where = means, ref, period, report, now, where
        self.deadline = deadline
        budget = deadline.budget or deadline.remaining()
        self.closing = plan.closing_seconds(budget)
        self.work = Deadline(deadline.at - self.closing, budget)
        self.reserve = plan.reserve_seconds(budget, means.settings.cos_timeout)

    def run(self) -> None:
        checkpoint = self._load()
        jobs = Triage(self.means, self.ref, checkpoint, self.report, self.now, self.deadline, self.work,
                      self.reserve, self.closing)
        try:
            self._look_again(checkpoint, jobs)
            listed_to = read_list(self.means.lister, self.ref, checkpoint.listed_through, self.period.end, self.now,
                                  self.work, jobs.known, jobs.may_go_on, jobs.page, self.report)
            self._recheck(jobs)
            jobs.finish()
            self._save(checkpoint, jobs.seen, listed_to)
        finally:
            jobs.close()

    def _load(self) -> cp.Checkpoint:
        try:
            stored = cp.load(self.means.store, self.where, self.deadline)
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

    # --- jobs read back by id ---------------------------------------------------------------------

    def _look_again(self, checkpoint: cp.Checkpoint, jobs: Triage) -> None:
        """The jobs held by the last tick, oldest first: those in a worker's hands by their marker; the
        others as CI reports them now (ten to a request), then like any listed job."""
        held = sorted(checkpoint.held.items(), key=lambda item: item[1])
        hands = [(i, c) for i, c in held if cp.in_hands(checkpoint, i, self.now)]
        others = [(i, c) for i, c in held if not cp.in_hands(checkpoint, i, self.now)]
        prefix = self.means.prefix
        for (job_id, created), done in zip(hands, jobs.heads.map(
                lambda item: self._marked(marker_at(self.ref.bucket, self.ref.region, item[0], prefix)), hands),
                strict=True):
            if done:
                self.report.already_done += 1
                jobs.seen.settle(job_id, created)
            else:
                self.report.in_hands += 1
                jobs.seen.hold(job_id, created)
        for start in range(0, len(others), MAX_IDS_PER_REQUEST):
            chunk = others[start:start + MAX_IDS_PER_REQUEST]
            if self.work.remaining() < self.reserve:
                return  # still held: the next tick starts with them
            try:
                answer = retrying(partial(self.means.lister.describe, self.ref.bucket, self.ref.region,
                                          tuple(i for i, _ in chunk)), self.work)
            except (TransientError, StorageError, MalformedCallback) as exc:
                self.report.errors.append(f"{self.ref.label()}: held jobs could not be read back from CI: {exc}")
                return
            self.report.looked_again += len(chunk)
            for job_id, created in chunk:
                if job_id not in answer.jobs:  # CI no longer knows it: nothing left to check
                    self.report.given_up.append(f"{self.ref.label()} {job_id} (unknown to CI now)")
                    jobs.seen.settle(job_id, created)
            jobs.handle([answer.jobs[i] for i, _ in chunk if i in answer.jobs])

    def _marked(self, where: OutputObject) -> bool:
        try:
            return retrying(partial(self.means.store.head, where), self.work) is not None
        except (TransientError, StorageError):
            return False

    def _recheck(self, jobs: Triage) -> None:
        """The settled jobs whose output a later job wrote again: through the pipeline once more, as CI
        reports them now (read back, ten to a request: rare, and no model is kept for it meanwhile)."""
        ids = tuple(sorted(jobs.rechecks))
        if not ids:
            return
        try:
            found = describe_jobs(self.means.lister.describe, self.ref.bucket, self.ref.region, ids, self.work)
        except CiUnavailable as exc:
            self.report.errors.append(f"{self.ref.label()}: jobs to look at again could not be read back: {exc}")
            return
        for job in found.values():
            self.report.rechecked += 1
            jobs.checker.submit(job)

    # --- the checkpoint ---------------------------------------------------------------------------

    def _save(self, checkpoint: cp.Checkpoint, seen: cp.Observations, listed_to: datetime) -> None:
        moved = cp.advanced(checkpoint, seen, listed_to, self.now)
        self.report.held += len(moved.held)
        moved = replace(moved, updated_at=datetime.now(timezone.utc), updated_by=self.means.me,
                        last_tick={"listed": self.report.listed, "checked": self.report.checked,
                                   "handedOff": self.report.handed_off, "leftUnchecked": self.report.left_unchecked})
        try:
            cp.save(self.means.store, self.where, moved, self.ref.queue_id, self.ref.tag, self.deadline)
        except (TransientError, StorageError) as exc:
            self.report.errors.append(f"{self.ref.label()}: the checkpoint was not written ({exc}): the next tick "
                                      "looks at these jobs again")
