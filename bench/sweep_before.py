"""The sweep as it was before issue 20 (handlers/sweep.py at 86e8ba0), kept as the benchmark's baseline
(like bench/naive.py): "today's figures", measured in the same run as the checkpointed sweep.

The reconciliation sweep: find successful jobs whose callback never arrived, and check them.

On a timer tick it lists, for each configured bucket, each of its media queues (RECONCILE_QUEUES, or
found once per bucket and tick through CI's queue API) and each configured tag, the successful jobs
created within the window (CI's job list needs a queue; page by page), skips the jobs whose outputs
already carry `ci-job=<JobId>` with a final verdict, and runs the rest exactly as a callback
would. It stops starting jobs while enough time is left to finish the one under way; the
next tick lists the window again and picks up the rest. Running beside callbacks is safe:
every action is idempotent.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Protocol

from handlers.actions.moves import destination_for
from handlers.actions.policy import movable
from handlers.ci.jobs import JobPage
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import output_objects
from handlers.intake.models import Callback, Job, JobResult, OutputObject, Verdict
from handlers.storage.tags import JOB_TAG, VERIFY_TAG

FINAL = {Verdict.VERIFIED.value, Verdict.MISMATCH.value, Verdict.UNVERIFIABLE.value}
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"


class JobLister(Protocol):
    def list_queues(self, bucket: str, region: str) -> list[str]: ...

    def list_jobs(self, bucket: str, region: str, queue_id: str, tag: str, start: str, end: str,
                  next_token: str) -> JobPage: ...


class TagReader(Protocol):
    def tags(self, target: OutputObject) -> dict[str, str] | None: ...


@dataclass
class SweepReport:
    listed: int = 0
    queues: int = 0  # queues listed, over all buckets
    unreadable: list[str] = field(default_factory=list)  # jobs CI listed that could not be read
    already_done: int = 0
    checked: list[JobResult] = field(default_factory=list)
    stopped_early: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"listed": self.listed, "queues": self.queues, "unreadable": self.unreadable,
                "alreadyDone": self.already_done, "checked": len(self.checked),
                "outcomes": sorted(r.outcome.value for r in self.checked),
                "stoppedEarly": self.stopped_early, "errors": self.errors,
                # Outputs no tick can hash as configured (see the reason in their "object checked" line).
                "tooLarge": [f"{r.job.job_id} {o.check.target.bucket}/{o.check.target.key}"
                             for r in self.checked for o in r.objects if o.check.too_large]}


def is_done(job: Job, read_tags: Callable[[OutputObject], dict[str, str] | None],
            places: Callable[[OutputObject], list[OutputObject]]) -> bool:
    """Whether every output of the job, where it is now, carries this job's final verdict."""
    for target in output_objects(job):
        for place in places(target):
            tags = read_tags(place)
            if tags is not None:
                if tags.get(JOB_TAG) != job.job_id or tags.get(VERIFY_TAG) not in FINAL:
                    return False
                break
        else:
            return False  # nowhere to be found: let a real check say `missing`
    return True


class JobNotChecked(Exception):
    """A job this tick could not check (CI could not confirm it, say); the message says why.
    The sweep reports it and goes on with the others; the next tick lists it again."""


# Runs a callback for one listed job: its results and the problems it met afterwards (an audit
# report that could not be written); raises JobNotChecked.
JobRunner = Callable[[Callback, Deadline], tuple[list[JobResult], list[str]]]


class Sweep:
    def __init__(self, settings: Settings, run_jobs: JobRunner,
                 lister: JobLister, store: TagReader):
        self._settings = settings
        self._run_jobs = run_jobs
        self._lister = lister
        self._store = store

    def run(self, deadline: Deadline, now: datetime | None = None) -> SweepReport:
        s = self._settings
        now = now or datetime.now(timezone.utc)
        start = (now - timedelta(minutes=s.reconcile_window_minutes)).strftime(CI_TIME)
        # CI's bounds are strict (created after start, before end) and to the second: end one second on,
        # so a job created in this very second is listed too.
        end = (now + timedelta(seconds=1)).strftime(CI_TIME)
        # Keep enough time to finish the job under way with its own retries.
        reserve = max(2.0, s.cos_timeout)
        report = SweepReport()
        with ThreadPoolExecutor(s.concurrency, thread_name_prefix="sweep") as pool:
            for bucket, region in s.reconcile_buckets:
                if report.stopped_early:
                    break
                queues = self._queues(bucket, region, deadline, report)
                report.queues += len(queues)
                for queue_id in queues:
                    for tag in s.reconcile_tags:
                        self._sweep_list(bucket, region, queue_id, tag, (start, end), pool, deadline, reserve,
                                         report)
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

    def _sweep_list(self, bucket: str, region: str, queue_id: str, tag: str, window: tuple[str, str],
                    pool: ThreadPoolExecutor, deadline: Deadline, reserve: float, report: SweepReport) -> None:
        token = ""
        while not report.stopped_early:
            if deadline.remaining() < reserve:
                report.stopped_early = True
                return
            try:
                page = retrying(partial(self._lister.list_jobs, bucket, region, queue_id, tag, *window, token),
                                deadline)
            except (TransientError, StorageError) as exc:
                report.errors.append(f"listing {tag} jobs of {bucket} in queue {queue_id}: {exc}")
                return
            report.listed += len(page.jobs)
            report.unreadable.extend(page.unreadable)
            self._check_page(list(page.jobs), pool, deadline, reserve, report)
            token = page.next_token
            if not token:
                return

    def _check_page(self, jobs: list[Job], pool: ThreadPoolExecutor, deadline: Deadline, reserve: float,
                    report: SweepReport) -> None:
        done = list(pool.map(lambda job: self._done(job, deadline), jobs))
        for job, finished in zip(jobs, done, strict=True):
            if finished:
                report.already_done += 1
                continue
            if deadline.remaining() < reserve:
                report.stopped_early = True
                return
            try:
                results, problems = self._run_jobs(Callback("TaskFinish", (job,)), deadline)
            except JobNotChecked as exc:
                report.errors.append(f"job {job.job_id}: {exc}")
                continue
            report.checked.extend(results)
            report.errors.extend(f"job {job.job_id}: {problem}" for problem in problems)

    def _done(self, job: Job, deadline: Deadline) -> bool:
        if not job.succeeded:
            return True
        try:
            return is_done(job, lambda t: retrying(lambda: self._store.tags(t), deadline),
                           lambda t: self._places(t, job.job_id))
        except (TransientError, StorageError):
            return False  # cannot tell: check it

    def _places(self, target: OutputObject, job_id: str) -> list[OutputObject]:
        """Where an output may be now: its own key, or where a move took it."""
        places = [target]
        for verdict in (Verdict.VERIFIED, Verdict.MISMATCH):
            if movable(verdict, self._settings):
                places.append(destination_for(target, verdict, job_id, self._settings))
        return places


def tick(pipeline, settings: Settings, deadline: Deadline, request_id: str) -> SweepReport:
    """The timer's tick as handlers/triggers/timer.py ran it then: each listed job asked of CI again
    (pipeline.run confirms every callback), one job at a time. `settings` are the sweep's; the pipeline's
    may name no bucket to reconcile, so that it writes none of today's settled markers."""
    import time as _time

    from handlers.ci.confirm import CiUnavailable, JobNotConfirmed
    from handlers.intake.auth import check_allowed
    from handlers.intake.callback import MalformedCallback
    from handlers.intake.http import HttpError

    def verify_job(callback: Callback, job_deadline: Deadline) -> tuple[list[JobResult], list[str]]:
        try:
            check_allowed(callback, settings)
        except HttpError:
            return [], []
        try:
            return pipeline.run(callback, job_deadline, request_id, _time.time())
        except (MalformedCallback, JobNotConfirmed, CiUnavailable) as exc:
            raise JobNotChecked(str(exc)) from None
        except HttpError as exc:
            raise JobNotChecked(exc.reason) from None

    sweep = Sweep(settings, verify_job, pipeline.ci_jobs.bound(deadline), pipeline.store.bound(deadline))
    return sweep.run(deadline)
