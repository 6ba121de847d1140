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

Sweep, here, goes through the buckets, queues and tags and takes each list's lease. One list is swept by
list_sweep.py (its checkpoint, the jobs read back by id), which reads CI's list with listing.py and sees
each job through with triage.py as plan.py decides (pure): checked here, or handed off with handoff.py.
report.py's SweepReport counts it all, for one log line.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from functools import partial

from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.reconcile import checkpoint as cp
from handlers.reconcile import lease
from handlers.reconcile.checks import JobRunner
from handlers.reconcile.handoff import HandOff, Workers
from handlers.reconcile.list_sweep import ListSweep
from handlers.reconcile.listing import CI_TIME, JobLister, ListRef, Period, window
from handlers.reconcile.means import Means, StateStore
from handlers.reconcile.plan import Allowed
from handlers.reconcile.report import SweepReport
from handlers.storage.records import state_prefix


class Sweep:
    def __init__(self, settings: Settings, run_job: JobRunner, lister: JobLister, store: StateStore,
                 me: str, allowed: Allowed | None = None, hand_off: HandOff | None = None,
                 max_workers: int = 0):
        self._settings = settings
        self._lister = lister
        self._store = store
        self._me = me or f"local-{uuid.uuid4().hex[:12]}"
        self._means = Means(settings, run_job, lister, store, self._me, state_prefix(settings.report_prefix),
                            allowed or (lambda job: None), Workers(hand_off, max_workers))

    # --- the tick -------------------------------------------------------------------------------

    def run(self, deadline: Deadline, now: datetime | None = None) -> SweepReport:
        """One tick over every configured list, within the window."""
        now = now or datetime.now(timezone.utc)
        return self.run_period(window(now, self._settings.reconcile_window_minutes), deadline, now)

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
        where = cp.location(ref.bucket, ref.region, self._means.prefix, period.kind, ref.queue_id, ref.tag)
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
            ListSweep(self._means, ref, period, deadline, report, now, where).run()
        finally:
            try:
                lease.release(self._store, held, self._me, deadline)
            except (TransientError, StorageError):
                pass  # it runs out at `until`
