"""数据万象 (CI) media-job API on `<bucket>.ci.<region>.myqcloud.com`: GET /jobs/<ids> and GET /jobs.

Jobs are registered by tests (or loaded from JSON) as the `JobsDetail` mapping xmltodict
would produce, and served back with xmltodict, so what a test registers is what the SDK reads.
"""
from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import xmltodict

from . import errors
from .exchange import Request, Response

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


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


@dataclass(frozen=True)
class JobQuery:
    tag: str
    states: frozenset[str] | None  # None: all states
    queue_id: str | None
    start: datetime | None
    end: datetime | None
    newest_first: bool


class JobRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._jobs: dict[tuple[str, str], _RegisteredJob] = {}

    def register(self, bucket: str, jobs_detail: Mapping[str, Any]) -> None:
        """Add a job, or replace the one with the same JobId in that bucket."""
        job_id = jobs_detail.get("JobId")
        if not job_id:
            raise ValueError("JobsDetail needs a JobId")
        detail = copy.deepcopy(dict(jobs_detail))
        with self._lock:
            self._jobs[(bucket, job_id)] = _RegisteredJob(
                next(self._order), bucket, detail, parse_time(detail.get("CreationTime")),
            )

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
        with self._lock:
            jobs = [job for job in self._jobs.values() if job.bucket == bucket and _matches(job, query)]
            jobs.sort(key=lambda job: job.sort_key, reverse=query.newest_first)
            return [copy.deepcopy(job.detail) for job in jobs]


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
        if query.start and job.created < query.start:
            return False
        if query.end and job.created > query.end:
            return False
    return True


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        label, _, offset = text.partition(":")
        if label != "offset":
            raise ValueError(token)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.invalid_argument(f"nextToken {token!r} is not valid.") from None


def _xml_response(content: dict[str, Any]) -> Response:
    return Response.xml(xmltodict.unparse({"Response": content}).encode("utf-8"))


class CiApi:
    def __init__(self, jobs: JobRegistry):
        self._jobs = jobs

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            raise errors.not_implemented(f"{request.method} {request.path} on the CI host")
        if request.path.startswith("/jobs/") and len(request.path) > len("/jobs/"):
            return self._describe_jobs(request.bucket, request.path[len("/jobs/"):].split(","))
        if request.path in ("/jobs", "/jobs/"):
            return self._list_jobs(request.bucket, request.query)
        raise errors.not_implemented(f"GET {request.path} on the CI host")

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
        query = _job_query(params)
        size = _page_size(params.get("size"))
        offset = _decode_token(params["nextToken"]) if params.get("nextToken") else 0
        jobs = self._jobs.search(bucket, query)
        page = jobs[offset:offset + size]
        next_token = _encode_token(offset + size) if offset + size < len(jobs) else ""
        content: dict[str, Any] = {}
        if page:
            content["JobsDetail"] = page
        content["NextToken"] = next_token
        return _xml_response(content)


def _job_query(params: Mapping[str, str]) -> JobQuery:
    tag = params.get("tag")
    if not tag:
        raise errors.invalid_argument("The tag parameter is required.")
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
