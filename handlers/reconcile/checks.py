"""Jobs checked side by side within an invocation's time, and how fast that goes.

The sweep's own checks and its workers' use this: up to CONCURRENCY jobs at once go through the
pipeline (each job's outputs share the processor's pools), none is started without the time to
finish it, and the rate measured tells the sweep how many more it can take and how large a worker's
batch may be.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from handlers.deadline import Deadline
from handlers.intake.models import Job, JobResult
from handlers.operations.settled import settles

# Until a few jobs have been measured, a job is assumed to keep one slot this long: VoiceSeparate's two
# outputs take about ten requests, about 30 ms of CPU each, and SCF's 256 MB has a fraction of a CPU.
DEFAULT_JOB_SECONDS = 2.0
MEASURED_AFTER = 8  # jobs finished before the measured rate replaces the assumed one
SHARE = 0.5  # of the time left, what a plan may fill: the estimate is an estimate


class JobNotChecked(Exception):
    """A job that could not be checked this time (CI could not be asked, say); the message says why."""


class JobSkipped(Exception):
    """A job this function must not act on (outside the allow-lists): settled, as nothing ever will."""


# Runs one listed job through the pipeline: its results and the problems met afterwards; raises
# JobNotChecked or JobSkipped.
JobRunner = Callable[[Job, Deadline], tuple[list[JobResult], list[str]]]


@dataclass
class Checked:
    job: Job
    results: list[JobResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str = ""  # JobNotChecked's reason
    skipped: str = ""  # JobSkipped's reason
    started: bool = True  # False: never started, no time was left

    @property
    def settled(self) -> bool:
        if self.skipped:
            return True
        return self.started and not self.error and not self.problems and bool(self.results) and all(
            settles(r) for r in self.results)


class Checker:
    def __init__(self, run_job: JobRunner, slots: int, deadline: Deadline, reserve: float,
                 job_seconds: float = DEFAULT_JOB_SECONDS):
        self._run_job = run_job
        self._slots = max(1, slots)
        self._deadline = deadline
        self._reserve = reserve  # a job is started only with this much time left (its own retries)
        self._job_seconds = job_seconds
        self._pool = ThreadPoolExecutor(self._slots, thread_name_prefix="reconcile")
        self._lock = threading.Lock()
        self._futures: list[Future[Checked]] = []
        self._finished = 0
        self._busy_seconds = 0.0  # summed over finished jobs

    # --- planning -------------------------------------------------------------------------------

    def rate(self) -> float:
        """Jobs a second this invocation finishes: measured once enough have, else assumed."""
        with self._lock:
            if self._finished >= MEASURED_AFTER and self._busy_seconds > 0:
                return self._slots * self._finished / self._busy_seconds
        return self._slots / self._job_seconds

    def job_seconds(self) -> float:
        """What one job keeps a slot for, as measured (for sizing a worker's batch)."""
        return self._slots / self.rate()

    def pending(self) -> int:
        with self._lock:
            return sum(1 for f in self._futures if not f.done())

    def capacity(self) -> int:
        """How many more jobs fit in the time left, with room to spare."""
        usable = (self._deadline.remaining() - self._reserve) * SHARE
        return max(0, int(self.rate() * usable) - self.pending())

    # --- running --------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        with self._lock:
            self._futures.append(self._pool.submit(self._check, job))

    def _check(self, job: Job) -> Checked:
        if self._deadline.remaining() < self._reserve:
            return Checked(job, started=False)
        started = time.monotonic()
        try:
            results, problems = self._run_job(job, self._deadline)
            checked = Checked(job, results, problems)
        except JobNotChecked as exc:
            checked = Checked(job, error=str(exc))
        except JobSkipped as exc:
            return Checked(job, skipped=str(exc))
        with self._lock:
            self._finished += 1
            self._busy_seconds += time.monotonic() - started
        return checked

    def drain(self) -> list[Checked]:
        """Every job submitted, checked or not: waits for those under way (each bounded by the deadline)."""
        with self._lock:
            futures, self._futures = self._futures, []
        done = []
        for future in futures:
            done.append(future.result())
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
