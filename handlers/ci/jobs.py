"""CI's job and queue API (DescribeMediaJob, DescribeMediaJobs, DescribeMediaQueues) through the SDK's CI
client, and its answers read into the function's models. What a callback is checked against is
ci/confirm.py; how the SDK's failures are sorted into kinds is ci/calls.py.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from handlers import log
from handlers.ci.calls import ci_call
from handlers.ci.confirm import CiAnswer
from handlers.deadline import Deadline
from handlers.errors import StorageError
from handlers.intake.callback import all_outputs
from handlers.intake.models import Job
from handlers.intake.nodes import MalformedCallback, as_list, build, timestamp
from handlers.storage.clients import Clients

QUEUE_PAGE_SIZE = 10  # DescribeMediaQueues' documented default page size
MAX_QUEUE_PAGES = 100  # a bound on the discovery of one bucket's queues, whatever TotalCount says
LIST_PAGE_SIZE = 100  # DescribeMediaJobs' `size`: at most 100 (https://cloud.tencent.com/document/api/460/84766)


@dataclass(frozen=True)
class JobPage:
    """One page of CI's job list: the jobs read, the token of the next page, the jobs skipped."""

    jobs: tuple[Job, ...]
    next_token: str  # empty: the last page
    unreadable: tuple[str, ...] = ()  # JobIds (or JobsDetail[i]) of the jobs that could not be read
    # Jobs the caller said it knows (`known`): listed, not read into models, with their CreationTime.
    known: tuple[tuple[str, datetime | None], ...] = ()
    last_created: datetime | None = None  # the CreationTime of the page's last job, whichever kind


# --- reading CI's answers (pure) ----------------------------------------------------------

def answer_from(data: Any) -> CiAnswer:
    """Read the SDK's dict of a DescribeMediaJob answer with the callback's own model builder.

    The SDK's xml_to_dict is not xmltodict: a single JobsDetail is a dict (its caller wraps it
    in a list), an empty element is None, and `<Response/>` comes back as {"Response": None}.
    """
    if not isinstance(data, dict):
        raise MalformedCallback(f"expected an element with children, got {type(data).__name__}")
    jobs = {}
    for i, node in enumerate(as_list(data.get("JobsDetail"))):
        job = build(Job, node, f"CI.JobsDetail[{i}]")
        all_outputs(job)  # contradictions in CI's own answer surface here, not as the callback's fault
        jobs[job.job_id] = job
    missing: set[str] = set()
    for entry in as_list(data.get("NonExistJobIds")):
        if not isinstance(entry, str):
            raise MalformedCallback(f"CI.NonExistJobIds: expected text, got {type(entry).__name__}")
        missing.update(part.strip() for part in entry.split(",") if part.strip())
    return CiAnswer(jobs, frozenset(missing))


def queue_page(data: Any) -> tuple[list[str], int]:
    """The queue ids of one DescribeMediaQueues answer and its TotalCount (0 when absent).
    Tencent's pages spell the id `QueueId`, and one published example `QueueID`: both are read."""
    if not isinstance(data, dict):
        return [], 0
    ids = []
    for entry in as_list(data.get("QueueList")):
        queue_id = entry.get("QueueId") or entry.get("QueueID") if isinstance(entry, dict) else None
        if isinstance(queue_id, str) and queue_id.strip():
            ids.append(queue_id.strip())
    try:
        total = int(data.get("TotalCount") or 0)
    except (TypeError, ValueError):
        total = 0
    return ids, total


class CiJobs:
    """The adapter: CI's job API through the SDK's CI client, failures sorted into kinds."""

    def __init__(self, clients: Clients, deadline: Deadline | None = None):
        self._clients = clients
        self._deadline = deadline

    def bound(self, deadline: Deadline) -> CiJobs:
        """The same adapter, with every request's timeout capped by the time the invocation has left."""
        return CiJobs(self._clients, deadline)

    def describe(self, bucket: str, region: str, job_ids: tuple[str, ...]) -> CiAnswer:
        where = f"GET /jobs/{','.join(job_ids)} on {bucket}"
        data = self._call(where, lambda: self._ci(region).ci_get_media_jobs(
            Bucket=bucket, JobIDs=",".join(job_ids)))
        if data is None:
            return CiAnswer({}, frozenset(job_ids))  # no such bucket at CI: it cannot know the job
        return answer_from(data)

    def list_queues(self, bucket: str, region: str) -> list[str]:
        """The ids of the bucket's media queues, paused ones too (their finished jobs still count).

        DescribeMediaQueues (`GET /queue`, https://cloud.tencent.com/document/product/441/38913) pages by
        pageNumber/pageSize (default 10) and says TotalCount. It lists the documented default category,
        Transcoding (media processing queues); cos-python-sdk-v5 cannot ask for another, so a
        SpeedTranscoding queue has to be named in RECONCILE_QUEUES."""
        queues: list[str] = []
        for number in range(1, MAX_QUEUE_PAGES + 1):
            data = self._call(f"GET /queue?pageNumber={number} on {bucket}", partial(
                self._ci(region).ci_get_media_queue, Bucket=bucket, State="All", PageNumber=str(number),
                PageSize=str(QUEUE_PAGE_SIZE)))
            if data is None:
                return queues  # no such bucket at CI: no queue
            page, total = queue_page(data)
            queues.extend(q for q in page if q not in queues)
            if not page or len(queues) >= total:
                break
        return queues

    def list_jobs(self, bucket: str, region: str, queue_id: str, tag: str, start: str, end: str,
                  next_token: str, states: str = "Success",
                  known: Callable[[str], bool] | None = None) -> JobPage:
        """One page (100 jobs, DescribeMediaJobs' most) of the queue's `tag` jobs in `states` created strictly
        between start and end, oldest first.

        DescribeMediaJobs requires queueId (https://cloud.tencent.com/document/api/460/84766). A job of the
        page that cannot be read is skipped, logged at WARNING, and named in the page's `unreadable`. A job
        whose JobId `known` accepts is only noted with its CreationTime: reading a node into the model is
        most of what a page costs the function (bench/: the sweep's figures), and the sweep needs no more."""
        data = self._call(f"GET /jobs?queueId={queue_id}&tag={tag} on {bucket}",
                          lambda: self._ci(region).ci_list_media_jobs(
                              Bucket=bucket, QueueId=queue_id, Tag=tag, States=states, StartCreationTime=start,
                              EndCreationTime=end, OrderByTime="Asc", Size=LIST_PAGE_SIZE, NextToken=next_token))
        if data is None:
            return JobPage((), "", ())
        if not isinstance(data, dict):
            raise StorageError(f"CI's job list for {bucket} could not be read: expected an element with children")
        jobs: list[Job] = []
        unreadable: list[str] = []
        noted: list[tuple[str, datetime | None]] = []
        last_created: datetime | None = None
        for i, node in enumerate(as_list(data.get("JobsDetail"))):
            job_id = node.get("JobId") if isinstance(node, dict) else None
            created = _created(node)
            last_created = created or last_created
            if known is not None and isinstance(job_id, str) and known(job_id):
                noted.append((job_id, created))
                continue
            try:
                job = build(Job, node, f"CI.JobsDetail[{i}]")
                all_outputs(job)
            except MalformedCallback as exc:
                label = job_id if isinstance(job_id, str) and job_id else f"JobsDetail[{i}]"
                log.warning("sweep skipped a job CI lists but that cannot be read", jobId=label, reason=str(exc),
                            bucket=bucket, queueId=queue_id)
                unreadable.append(label)
                continue
            jobs.append(job)
        return JobPage(tuple(jobs), str(data.get("NextToken") or ""), tuple(unreadable), tuple(noted), last_created)

    def _ci(self, region: str) -> Any:
        return self._clients.ci(region, self._deadline)

    @staticmethod
    def _call(where: str, request: Callable[[], Any]) -> Any:
        return ci_call(where, request, "ci:DescribeMediaJob / ci:DescribeMediaJobs / ci:DescribeMediaQueues")


def _created(node: Any) -> datetime | None:
    """A listed job's CreationTime, read without the model (None when it has none that reads)."""
    raw = node.get("CreationTime") if isinstance(node, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return timestamp(raw, "CreationTime")
    except MalformedCallback:
        return None


