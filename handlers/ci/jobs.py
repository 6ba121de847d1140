"""Read a job back from CI before acting on a callback about it.

CI signs nothing it posts: a callback is a claim. Before a claimed success makes the function
touch storage, CI's own API (`GET /jobs/<ids>` on `<bucket>.ci.<region>.myqcloud.com`) must
know the job, report it as Success, and list the same outputs with the same MD5s. The job CI
reports is then the one that is verified, so every MD5 the function trusts comes from CI.

Jobs that cause no storage request (failed, cancelled, or without outputs) are not looked up:
forging one achieves nothing but an answer.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers import exchange, log
from handlers.deadline import MIN_ATTEMPT_SECONDS, Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.callback import all_outputs, output_objects
from handlers.intake.models import Callback, Job, OutputObject
from handlers.intake.nodes import MalformedCallback, as_list, build, timestamp
from handlers.storage.clients import Clients

MAX_IDS_PER_REQUEST = 10  # CI's documented limit for one DescribeMediaJob call
QUEUE_PAGE_SIZE = 10  # DescribeMediaQueues' documented default page size
MAX_QUEUE_PAGES = 100  # a bound on the discovery of one bucket's queues, whatever TotalCount says
LIST_PAGE_SIZE = 100  # DescribeMediaJobs' `size`: at most 100 (https://cloud.tencent.com/document/api/460/84766)


class JobNotConfirmed(Exception):
    """CI does not vouch for the job as the callback describes it."""


class CiUnavailable(Exception):
    """CI could not be asked, or its answer could not be read: try again later."""


@dataclass(frozen=True)
class CiAnswer:
    jobs: Mapping[str, Job]  # by JobId
    missing: frozenset[str]  # NonExistJobIds


Lookup = Callable[[str, str, tuple[str, ...]], CiAnswer]  # (bucket, region, job ids)


@dataclass(frozen=True)
class JobPage:
    """One page of CI's job list: the jobs read, the token of the next page, the jobs skipped."""

    jobs: tuple[Job, ...]
    next_token: str  # empty: the last page
    unreadable: tuple[str, ...] = ()  # JobIds (or JobsDetail[i]) of the jobs that could not be read
    # Jobs the caller said it knows (`known`): listed, not read into models, with their CreationTime.
    known: tuple[tuple[str, datetime | None], ...] = ()
    last_created: datetime | None = None  # the CreationTime of the page's last job, whichever kind


# --- pure -------------------------------------------------------------------------------

def needs_confirmation(job: Job) -> bool:
    return job.succeeded and bool(output_objects(job))


def disagreement(claimed: Job, reported: Job | None) -> str | None:
    """Why CI's account of the job does not back the callback's; None when it does.

    The outputs must agree on key and MD5; a bucket counts where both name one (an older
    callback's `<Bucket/>` is no disagreement: CI's account, which is what gets verified, says)."""
    if reported is None:
        return f"job {claimed.job_id} is unknown to CI"
    if not reported.succeeded:
        return f"CI reports job {claimed.job_id} as {reported.state or 'without a state'}, not Success"
    ours, theirs = all_outputs(claimed), all_outputs(reported)
    only_ours, only_theirs = _unmatched(ours, theirs), _unmatched(theirs, ours)
    if only_ours or only_theirs:
        return (f"job {claimed.job_id}: the callback's outputs differ from CI's "
                f"(only in the callback: {_describe(only_ours)}; only at CI: {_describe(only_theirs)})")
    return None


def _unmatched(these: tuple[OutputObject, ...], those: tuple[OutputObject, ...]) -> set[OutputObject]:
    """The objects of `these` that no object of `those` matches: same key and MD5, and the same
    bucket where both name one. Indexed by key: a Segment or Snapshot job has thousands."""
    by_key: dict[str, list[OutputObject]] = {}
    for other in those:
        by_key.setdefault(other.key, []).append(other)
    return {one for one in these if not any(
        one.expected_md5 == other.expected_md5 and (not one.bucket or not other.bucket or one.bucket == other.bucket)
        for other in by_key.get(one.key, ()))}


def _describe(objects: set[OutputObject]) -> str:
    if not objects:
        return "none"
    shown = sorted(f"{o.bucket}/{o.key}={o.expected_md5 or 'no MD5'}" for o in objects)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


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


# --- the look-up --------------------------------------------------------------------------

def confirmed(callback: Callback, lookup: Lookup, deadline: Deadline,
              attempt_seconds: float = MIN_ATTEMPT_SECONDS) -> Callback:
    """The callback with every job that would touch storage replaced by CI's account of it.

    Raises JobNotConfirmed (the caller answers 403), CiUnavailable (503), or MalformedCallback
    when a job gives no input bucket to look it up in (400).
    """
    pending = [job for job in callback.jobs_detail if needs_confirmation(job)]
    if not pending:
        return callback
    reported: dict[str, Job] = {}
    for (bucket, region), ids in _by_bucket(pending).items():
        reported.update(describe_jobs(lookup, bucket, region, ids, deadline, attempt_seconds))
    for job in pending:
        problem = disagreement(job, reported.get(job.job_id))
        if problem:
            raise JobNotConfirmed(problem)
    return Callback(callback.event_name, tuple(
        reported[job.job_id] if needs_confirmation(job) else job for job in callback.jobs_detail))


def describe_jobs(lookup: Lookup, bucket: str, region: str, ids: tuple[str, ...], deadline: Deadline,
                  attempt_seconds: float = MIN_ATTEMPT_SECONDS) -> dict[str, Job]:
    """CI's account of each job it knows among `ids` (those it does not know are absent).
    Raises CiUnavailable when CI cannot be asked."""
    reported: dict[str, Job] = {}
    for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
        chunk = ids[start:start + MAX_IDS_PER_REQUEST]
        answer = _ask(lookup, bucket, region, chunk, deadline, attempt_seconds)
        reported.update((job_id, answer.jobs[job_id]) for job_id in chunk if job_id in answer.jobs)
    return reported


def _by_bucket(jobs: list[Job]) -> dict[tuple[str, str], tuple[str, ...]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        ids = groups.setdefault(job_place(job), [])
        if job.job_id not in ids:
            ids.append(job.job_id)
    return {where: tuple(ids) for where, ids in groups.items()}


def job_place(job: Job) -> tuple[str, str]:
    """(bucket, region) of the bucket the job ran in, whose CI host knows it: its input's, or for
    a job without input (Tts turns text into audio) the bucket it wrote its first output to."""
    source = job.input
    if source is not None and source.bucket_id and source.region:
        return source.bucket_id, source.region
    for target in output_objects(job):
        return target.bucket, target.region
    raise MalformedCallback(f"job {job.job_id}: names no bucket and region (Input or OutputFile) to read the job "
                            "back from CI")


def _ask(lookup: Lookup, bucket: str, region: str, ids: tuple[str, ...], deadline: Deadline,
         attempt_seconds: float) -> CiAnswer:
    try:
        return retrying(lambda: lookup(bucket, region, ids), deadline, attempt_seconds)
    except TransientError as exc:
        raise CiUnavailable(f"CI's job API did not answer: {exc}") from None
    except StorageError as exc:
        raise CiUnavailable(f"CI refused to describe the job: {exc}") from None
    except MalformedCallback as exc:
        raise CiUnavailable(f"CI's description of the job could not be read: {exc}") from None


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


def ci_call(where: str, request: Callable[[], Any], role_actions: str) -> Any:
    """The SDK's answer to a CI request; None for a 404 (CI knows no such bucket or job).
    Failures are sorted into kinds: TransientError (network, 429, 5xx, an answer cut or broken
    off, which the SDK may read and parse after the exchange: exchange.BROKEN_ANSWER) or
    StorageError, which names the CAM actions (`role_actions`) the execution role needs when
    CI answers 403."""
    try:
        return request()
    except CosClientError as exc:
        raise TransientError(f"{where}: {exc.get_message() if hasattr(exc, 'get_message') else exc}") from None
    except exchange.BROKEN_ANSWER as exc:
        raise TransientError(f"{where}: the answer could not be read: {type(exc).__name__}: {exc}") from None
    except CosServiceError as exc:
        status, code = exc.get_status_code(), exc.get_error_code() or ""
        if status == 404:
            return None
        message = f"{where}: {status} {code} {exc.get_error_msg() or ''}".strip()
        if status == 429 or status >= 500:
            raise TransientError(message) from None
        raise StorageError(f"{message} ({refusal_cause(code, role_actions)})" if status == 403 else message) from None


# 403 codes that refuse the credentials themselves, not what they may do
# (https://www.tencentcloud.com/document/product/436/40105: InvalidAccessKeyId, SignatureDoesNotMatch;
# a temporary SecretId sent without its session token is refused the same way).
CREDENTIAL_REFUSALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"})


def refusal_cause(code: str, role_actions: str) -> str:
    """What to fix for a 403: the credentials (temporary keys need their session token), or the
    execution role's permissions (AccessDenied and the rest)."""
    if code in CREDENTIAL_REFUSALS:
        return ("the credentials were refused: TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY, with "
                "TENCENTCLOUD_SESSIONTOKEN when the keys are temporary (SCF sets all three from the execution role)")
    return f"the execution role needs {role_actions}"
