"""CI's job lists as the sweep reads them: which list (ListRef: a bucket, a media queue, a tag), which jobs
(Period), and reading one list from where its checkpoint stopped to the period's end, page by page.

CI lists a job by its CreationTime only, every state, oldest first; its bounds are strict and to the
second. DescribeMediaJobs documents no longest period per request and no retention
(https://cloud.tencent.com/document/api/460/84766, https://cloud.tencent.com/document/api/436/49203):
periods are listed a day at a time, so that no request depends on one, and progress is kept per day.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from handlers.ci.confirm import CiAnswer
from handlers.ci.jobs import JobPage
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.reconcile import checkpoint as cp
from handlers.reconcile.report import SweepReport

CI_TIME = "%Y-%m-%dT%H:%M:%S%z"
LIST_SPAN = timedelta(days=1)  # a period is listed a day at a time (above)


class JobLister(Protocol):
    def list_queues(self, bucket: str, region: str) -> list[str]: ...

    def describe(self, bucket: str, region: str, job_ids: tuple[str, ...]) -> CiAnswer: ...

    def list_jobs(self, bucket: str, region: str, queue_id: str, tag: str, start: str, end: str,
                  next_token: str, states: str = "Success",
                  known: Callable[[str], bool] | None = None) -> JobPage: ...


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


def window(now: datetime, minutes: int) -> Period:
    """The timer's period: the last `minutes` (RECONCILE_WINDOW_MINUTES) up to `now`."""
    # CI's bounds are strict and to the second: end one second on, so a job of this very second counts.
    return Period(now - timedelta(minutes=minutes), now + timedelta(seconds=1))


def read_list(lister: JobLister, ref: ListRef, start: datetime, end: datetime, now: datetime, work: Deadline,
              known: Callable[[str], bool], go_on: Callable[[], bool], on_page: Callable[[JobPage], None],
              report: SweepReport) -> datetime:
    """Read `ref`'s list from `start` (where the last tick stopped) to `end`, giving each page to `on_page`
    while `go_on()` says there is time and room; returns the CreationTime up to which every job was listed.
    `known` names the jobs known settled, which CI's page need not carry in full."""
    covered = start
    while start < end:
        stop = min(end, start + LIST_SPAN)
        token = ""
        while True:
            if not go_on():
                report.unlisted.append(f"{ref.label()} from {covered.strftime(CI_TIME)}")
                return covered
            try:
                page = retrying(partial(
                    lister.list_jobs, ref.bucket, ref.region, ref.queue_id, ref.tag,
                    start.strftime(CI_TIME), stop.strftime(CI_TIME), token, "All", known), work)
            except (TransientError, StorageError) as exc:
                report.errors.append(f"listing {ref.tag} jobs of {ref.bucket} in queue {ref.queue_id}: {exc}")
                report.unlisted.append(f"{ref.label()} from {covered.strftime(CI_TIME)}")
                return covered
            report.pages += 1
            on_page(page)
            token = page.next_token
            if not token:
                break
            covered = cp.frontier(False, page.last_created, covered, end, now)
        # The slice is read to its end: every job created before `stop` is listed.
        covered = cp.frontier(True, None, covered, stop, now)
        start = stop - cp.SECOND  # the next slice starts with the second `stop` (bounds are strict)
        if stop >= end or covered < stop - cp.SECOND:
            break  # past the edge: the jobs of the last minutes are listed again next time
    return covered
