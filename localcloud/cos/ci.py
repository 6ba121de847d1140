"""数据万象 (CI) media-job API on `<bucket>.ci.<region>.myqcloud.com`: GET /jobs/<ids>, GET /jobs, GET /queue.

Jobs are registered by tests (or loaded from JSON) as the `JobsDetail` mapping xmltodict
would produce, and served back with xmltodict, so what a test registers is what the SDK reads.

Every job runs in a media queue, as at CI: a job registered without a `QueueId` is put in the
bucket's default queue (DEFAULT_QUEUE_ID), and every queue a job names is known to the bucket's
queue API; `declare_queue` adds a queue (a paused one, one with no jobs yet, ...).
"""
from __future__ import annotations

import base64
import binascii
import bisect
import copy
import itertools
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import xmltodict

from . import errors
from .exchange import Request, Response
from .file_jobs import FileJobs

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
# The queue a job registered without a QueueId runs in (CI's media queue ids are `p` + 32 hex digits).
DEFAULT_QUEUE_ID = "p" + "0" * 32
QUEUE_STATES = ("Active", "Paused")
# DescribeMediaQueues' `category` (https://cloud.tencent.com/document/product/441/38913 and
# https://www.tencentcloud.com/document/product/1045/72939, 2025-09-08): CateAll, Transcoding, SpeedTranscoding.
QUEUE_CATEGORIES = ("Transcoding", "SpeedTranscoding")
DEFAULT_QUEUE_CATEGORY = "Transcoding"
MAX_QUEUE_IDS = 10


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT)
    except ValueError:
        return None


@dataclass
class _RegisteredJob:
    order: int
    bucket: str
    detail: dict[str, Any]
    created: datetime | None

    @property
    def sort_key(self) -> tuple[float, int]:
        return (self.created.timestamp() if self.created else float("-inf"), self.order)

    @property
    def list_key(self) -> tuple[str, str, str]:
        """The list it appears in: DescribeMediaJobs needs a queue and a tag."""
        return (self.bucket, str(self.detail.get("QueueId") or ""), str(self.detail.get("Tag") or ""))


@dataclass(frozen=True)
class JobQuery:
    tag: str
    states: frozenset[str] | None  # None: all states
    queue_id: str | None
    start: datetime | None
    end: datetime | None
    newest_first: bool


Position = tuple[float, int]  # a job's place in its list: (creation time, order of registration)


@dataclass(frozen=True)
class JobSlice:
    """One page of a search: the jobs, and the position after which the next page starts (None: the last)."""

    jobs: list[dict[str, Any]]
    next_after: Position | None


@dataclass
class _Queue:
    order: int
    queue_id: str
    name: str
    state: str
    category: str

    def as_xml(self) -> dict[str, Any]:
        """One QueueList entry, with the nodes DescribeMediaQueues documents."""
        return {"QueueId": self.queue_id, "Name": self.name, "State": self.state,
                "NotifyConfig": {"Url": None, "Event": None, "Type": None, "State": "Off", "ResultFormat": None},
                "MaxSize": "10000", "MaxConcurrent": "10", "UpdateTime": "2022-08-09T16:23:11+0800",
                "CreateTime": "2022-08-09T16:23:11+0800", "Category": self.category}


class JobRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._jobs: dict[tuple[str, str], _RegisteredJob] = {}
        # Each (bucket, queue, tag) list sorted by position, so that a page costs the page, not every job
        # (bench/: the sweep's figures at 10,000+ jobs).
        self._lists: dict[tuple[str, str, str], list[tuple[float, int, str]]] = {}
        self._queues: dict[str, dict[str, _Queue]] = {}  # bucket -> queue id -> queue
        self.examined = 0  # entries the last search looked at (tests: a page costs its own size)

    def register(self, bucket: str, jobs_detail: Mapping[str, Any]) -> None:
        """Add a job, or replace the one with the same JobId in that bucket.

        A job without a QueueId is put in the default queue; the job's queue becomes known."""
        job_id = jobs_detail.get("JobId")
        if not job_id:
            raise ValueError("JobsDetail needs a JobId")
        detail = copy.deepcopy(dict(jobs_detail))
        if not detail.get("QueueId"):
            detail["QueueId"] = DEFAULT_QUEUE_ID
        with self._lock:
            self._declare(bucket, str(detail["QueueId"]))
            earlier = self._jobs.get((bucket, job_id))
            if earlier is not None:
                entries = self._lists[earlier.list_key]
                del entries[bisect.bisect_left(entries, (*earlier.sort_key, job_id))]
            job = self._jobs[(bucket, job_id)] = _RegisteredJob(
                next(self._order), bucket, detail, parse_time(detail.get("CreationTime")),
            )
            bisect.insort(self._lists.setdefault(job.list_key, []), (*job.sort_key, job_id))

    def declare_queue(self, bucket: str, queue_id: str, name: str = "", state: str = "Active",
                      category: str = DEFAULT_QUEUE_CATEGORY) -> None:
        """Make a media queue known to the bucket's queue API (or change its name, state, category)."""
        if state not in QUEUE_STATES:
            raise ValueError(f"state must be one of {QUEUE_STATES}, not {state!r}")
        if category not in QUEUE_CATEGORIES:
            raise ValueError(f"category must be one of {QUEUE_CATEGORIES}, not {category!r}")
        with self._lock:
            queue = self._declare(bucket, queue_id)
            queue.name, queue.state, queue.category = name or queue.name, state, category

    def _declare(self, bucket: str, queue_id: str) -> _Queue:
        queues = self._queues.setdefault(bucket, {})
        if queue_id not in queues:
            queues[queue_id] = _Queue(next(self._order), queue_id, f"queue-{len(queues) + 1}", "Active",
                                      DEFAULT_QUEUE_CATEGORY)
        return queues[queue_id]

    def queues(self, bucket: str) -> list[_Queue]:
        with self._lock:
            return sorted((copy.copy(q) for q in self._queues.get(bucket, {}).values()), key=lambda q: q.order)

    def load(self, path: str | Path) -> int:
        """Register the jobs of a JSON file: a list of {"bucket": ..., "JobsDetail": {...} or [...]}."""
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
        count = 0
        for entry in entries:
            details = entry["JobsDetail"]
            for detail in details if isinstance(details, list) else [details]:
                self.register(entry["bucket"], detail)
                count += 1
        return count

    def find(self, bucket: str, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get((bucket, job_id))
            return copy.deepcopy(job.detail) if job else None

    def search(self, bucket: str, query: JobQuery) -> list[dict[str, Any]]:
        """Every job the query matches, in its order (tests; the API pages with `page`)."""
        found: list[dict[str, Any]] = []
        after: Position | None = None
        while True:
            page = self.page(bucket, query, after, MAX_PAGE_SIZE)
            found.extend(page.jobs)
            if page.next_after is None:
                return found
            after = page.next_after

    def page(self, bucket: str, query: JobQuery, after: Position | None, size: int) -> JobSlice:
        """Up to `size` jobs of the query's list past `after`, found by bisection in the list's sorted
        positions: the time taken grows with the page (and the jobs of other states it passes), not with
        every job the bucket has."""
        with self._lock:
            entries = self._lists.get((bucket, query.queue_id or "", query.tag), [])
            low, high = _bounds(entries, query)
            if after is not None:
                if query.newest_first:
                    high = min(high, bisect.bisect_left(entries, after))
                else:
                    low = max(low, bisect.bisect_right(entries, (after[0], after[1], "\uffff")))
            indexes = range(high - 1, low - 1, -1) if query.newest_first else range(low, high)
            page: list[_RegisteredJob] = []
            examined, more = 0, False
            for index in indexes:
                examined += 1
                job = self._jobs[(bucket, entries[index][2])]
                if not _matches(job, query):
                    continue
                if len(page) == size:
                    more = True  # one more beyond the page: it gets a NextToken
                    break
                page.append(job)
            self.examined = examined
            return JobSlice([copy.deepcopy(job.detail) for job in page],
                            page[-1].sort_key if more else None)


def _bounds(entries: list[tuple[float, int, str]], query: JobQuery) -> tuple[int, int]:
    """The slice of a sorted list inside the query's strict creation-time bounds; jobs without a
    CreationTime only when the query gives no bounds."""
    if not (query.start or query.end):
        return 0, len(entries)
    low = bisect.bisect_right(entries, (float("-inf"), math.inf))  # past the jobs without a CreationTime
    high = len(entries)
    if query.start:
        low = max(low, bisect.bisect_right(entries, (query.start.timestamp(), math.inf)))
    if query.end:
        high = bisect.bisect_left(entries, (query.end.timestamp(), -math.inf))
    return low, max(low, high)


def _matches(job: _RegisteredJob, query: JobQuery) -> bool:
    detail = job.detail
    if detail.get("Tag") != query.tag:
        return False
    if query.states is not None and detail.get("State") not in query.states:
        return False
    if query.queue_id and detail.get("QueueId") != query.queue_id:
        return False
    if query.start or query.end:
        if job.created is None:
            return False
        # Strict bounds: "创建时间大于该时间" / "创建时间小于该时间" (DescribeMediaJobs,
        # https://cloud.tencent.com/document/api/460/84766, and https://cloud.tencent.com/document/api/436/49203).
        if query.start and job.created <= query.start:
            return False
        if query.end and job.created >= query.end:
            return False
    return True


def _encode_token(after: Position) -> str:
    return base64.urlsafe_b64encode(f"after:{after[0]!r}:{after[1]}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> Position:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        label, created, order = text.split(":")
        if label != "after":
            raise ValueError(token)
        return float(created), int(order)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.invalid_argument(f"nextToken {token!r} is not valid.") from None


def _xml_response(content: dict[str, Any]) -> Response:
    return Response.xml(xmltodict.unparse({"Response": content}).encode("utf-8"))


class CiApi:
    def __init__(self, jobs: JobRegistry, file_jobs: FileJobs | None = None):
        self._jobs = jobs
        self._file_jobs = file_jobs

    def handle(self, request: Request) -> Response:
        if self._file_jobs is not None and request.path.rstrip("/").split("/")[1:2] == ["file_jobs"]:
            return self._file_jobs.handle(request)
        if request.method != "GET":
            raise errors.not_implemented(f"{request.method} {request.path} on the CI host")
        if request.path.startswith("/jobs/") and len(request.path) > len("/jobs/"):
            return self._describe_jobs(request.bucket, request.path[len("/jobs/"):].split(","))
        if request.path in ("/jobs", "/jobs/"):
            return self._list_jobs(request.bucket, request.query)
        if request.path in ("/queue", "/queue/"):
            return self._describe_queues(request.bucket, request.query)
        raise errors.not_implemented(f"GET {request.path} on the CI host")

    def _describe_queues(self, bucket: str, params: Mapping[str, str]) -> Response:
        """DescribeMediaQueues: the bucket's media queues, filtered by queueIds, state and category, a page
        at a time (pageNumber from 1, pageSize default 10), with TotalCount, PageNumber, PageSize and QueueList
        as https://cloud.tencent.com/document/product/441/38913 (the newest page, also
        https://www.tencentcloud.com/document/product/1045/72939, 2025-09-08) shows. cos-python-sdk-v5's
        ci_get_media_queue sends queueIds, state (default `All`), pageNumber and pageSize, empty when not given.
        """
        wanted = [q.strip() for q in (params.get("queueIds") or "").split(",") if q.strip()]
        if len(wanted) > MAX_QUEUE_IDS:
            raise errors.invalid_argument(f"queueIds names at most {MAX_QUEUE_IDS} queues.")
        state = params.get("state") or "All"
        if state != "All" and state not in QUEUE_STATES:
            raise errors.invalid_argument(f"state must be Active or Paused; got {state!r}.")
        category = params.get("category") or DEFAULT_QUEUE_CATEGORY
        if category != "CateAll" and category not in QUEUE_CATEGORIES:
            raise errors.invalid_argument(f"category must be CateAll, Transcoding or SpeedTranscoding; got {category!r}.")
        number = _positive(params, "pageNumber", 1, None)
        size = _positive(params, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        queues = [q for q in self._jobs.queues(bucket)
                  if (not wanted or q.queue_id in wanted) and state in ("All", q.state)
                  and category in ("CateAll", q.category)]
        page = queues[(number - 1) * size:number * size]
        content: dict[str, Any] = {"RequestId": "local", "TotalCount": str(len(queues)), "PageNumber": str(number),
                                   "PageSize": str(size)}
        if page:
            content["QueueList"] = [q.as_xml() for q in page]
        return _xml_response(content)

    def _describe_jobs(self, bucket: str, job_ids: list[str]) -> Response:
        found, missing = [], []
        for job_id in (job_id.strip() for job_id in job_ids):
            if not job_id:
                continue
            detail = self._jobs.find(bucket, job_id)
            if detail is None:
                missing.append(job_id)
            else:
                found.append(detail)
        content: dict[str, Any] = {}
        if found:
            content["JobsDetail"] = found
        if missing:
            content["NonExistJobIds"] = missing
        return _xml_response(content)

    def _list_jobs(self, bucket: str, params: Mapping[str, str]) -> Response:
        """A page of DescribeMediaJobs. The token names the position of the page's last job (not an
        offset), so a job registered meanwhile neither shifts nor repeats the pages that follow."""
        query = _job_query(params)
        size = _page_size(params.get("size"))
        after = _decode_token(params["nextToken"]) if params.get("nextToken") else None
        page = self._jobs.page(bucket, query, after, size)
        content: dict[str, Any] = {}
        if page.jobs:
            content["JobsDetail"] = page.jobs
        content["NextToken"] = _encode_token(page.next_after) if page.next_after is not None else ""
        return _xml_response(content)


def _job_query(params: Mapping[str, str]) -> JobQuery:
    tag = params.get("tag")
    if not tag:
        raise errors.invalid_argument("The tag parameter is required.")
    # queueId is required ("是否必选: 是", https://cloud.tencent.com/document/api/460/84766). A missing
    # parameter answers with CI's common error body and code for a bad argument, InvalidArgument 400
    # (Cloud Infinite's error codes, https://www.tencentcloud.com/document/product/1045/43611); no page
    # gives the exact message for this case.
    if not params.get("queueId"):
        raise errors.invalid_argument("The queueId parameter is required.")
    order = params.get("orderByTime") or "Desc"
    if order not in ("Desc", "Asc"):
        raise errors.invalid_argument("orderByTime must be Desc or Asc.")
    states_param = params.get("states") or "All"
    states = None if states_param == "All" else frozenset(s.strip() for s in states_param.split(",") if s.strip())
    start, end = (_time_param(params, name) for name in ("startCreationTime", "endCreationTime"))
    return JobQuery(tag, states, params.get("queueId") or None, start, end, newest_first=(order == "Desc"))


def _time_param(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if not text:
        return None
    parsed = parse_time(text)
    if parsed is None:
        raise errors.invalid_argument(f"{name} must look like 2022-07-01T10:12:26+0800; got {text!r}.")
    return parsed


def _positive(params: Mapping[str, str], name: str, default: int, high: int | None) -> int:
    text = params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise errors.invalid_argument(f"{name} must be a number; got {text!r}.") from None
    if value < 1 or (high is not None and value > high):
        raise errors.invalid_argument(f"{name} must be between 1 and {high or 'any'}; got {value}.")
    return value


def _page_size(text: str | None) -> int:
    if not text:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        raise errors.invalid_argument(f"size must be a number; got {text!r}.") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise errors.invalid_argument(f"size must be between 1 and {MAX_PAGE_SIZE}; got {size}.")
    return size
