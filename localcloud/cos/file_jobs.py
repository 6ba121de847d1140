"""CI's hash calculation: the synchronous `GET /<key>?ci-process=filehash` on the cos host, and the
asynchronous `FileHashCode` file job (`POST /file_jobs`, `GET /file_jobs/<ids>`) on the ci host.

What Tencent documents, and the emulator does:
- Sync (https://cloud.tencent.com/document/api/436/121027): objects under 128 MB; `type` md5, sha1 or
  sha256; the answer is `<Response><FileHashCodeResult><MD5>…</MD5><FileSize>…</FileSize>…</FileHashCodeResult>
  <Input><Bucket/><Object/><Region/></Input></Response>`. The Python SDK's page
  (https://cloud.tencent.com/document/product/436/100776) shows `LastModified` and a quoted `Etag` in
  FileHashCodeResult too; the emulator sends them. No page gives the error for an object too large: the
  emulator answers 400 InvalidArgument, saying so.
- Async (https://cloud.tencent.com/document/api/436/83108, https://cloud.tencent.com/document/api/436/115537):
  `<Request><Tag>FileHashCode</Tag><Input><Object/></Input><Operation><FileHashCodeConfig><Type>MD5</Type>
  </FileHashCodeConfig><UserData/></Operation><QueueId/><CallBack/><CallBackFormat/></Request>`; UserData is
  at most 1,024 printable ASCII characters. The job (id `f` + 32 hex digits, as the published sample) starts
  `Submitted` and answers as tests/fixtures/ci/createmediajobs-filehashcode-1.xml does; it is hashed in the
  background, then reads as tests/fixtures/ci/describemediajob-filehashcode-1.xml (`FileHashCodeResult` with
  MD5, FileSize, LastModified, Etag), and its `TaskFinish` callback — `<Response><EventName>TaskFinish
  </EventName><JobsDetail>…</JobsDetail></Response>`, like any CI job's — goes to the job's CallBack.
- Query (https://cloud.tencent.com/document/api/436/83109): up to 10 comma-separated ids; unknown ones are
  named in NonExistJobIds.

An archived object cannot be hashed ("不支持计算 COS 上的归档存储类型和深度归档存储类型的文件哈希值", 83108 above):
its job ends `Failed`. `failures` names the objects whose jobs fail so, with the Code and Message to report.

Callback delivery is the emulator's own setting: `callback_sink` (a callable) receives every callback instead
of an HTTP POST, so a test can hold, drop or replay it; without one a callback is POSTed to the job's CallBack
URL, and a job without CallBack (CI would use its queue's) has nowhere to go: it is lost.
`delay` holds each job that many seconds before it is hashed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import xmltodict

from . import errors
from .exchange import Request, Response
from .store import Store, read_chunks

SYNC_LIMIT = 128 * 1024 * 1024  # "支持计算小于128MB大小的文件"
MAX_USER_DATA = 1024
MAX_IDS = 10
ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}
FILE_QUEUE_ID = "p" + "f" * 32  # the queue a job created without QueueId runs in
# No page gives the Code and Message of a FileHashCode job that fails on an archived object; this borrows the
# code object stores answer for reading one (InvalidObjectState). A test may give any other.
ARCHIVED = ("InvalidObjectState", "The object is in the ARCHIVE storage class: restore it before hashing it.")
_CI_TIME = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True)
class FileJobCallback:
    """What CI would POST for a finished file job: to `url`, `body` of `content_type`."""

    url: str
    body: bytes
    content_type: str
    job_id: str


CallbackSink = Callable[[FileJobCallback], None]


def _ci_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).astimezone().strftime(_CI_TIME)


def _xml(content: dict[str, Any]) -> Response:
    return Response.xml(xmltodict.unparse({"Response": content}).encode("utf-8"))


def _digest(store: Store, bucket: str, key: str, algorithm: str) -> tuple[str, Any]:
    """The object's hash, read from its bytes (MD5 as the store knows it), and the object."""
    stored, content = store.open(bucket, key)
    with content:
        if algorithm == "md5":
            return stored.md5, stored
        digest = hashlib.new(algorithm)
        for chunk in read_chunks(content):
            digest.update(chunk)
    return digest.hexdigest(), stored


def _result(value: str, stored: Any, algorithm: str) -> dict[str, str]:
    return {algorithm.upper(): value, "FileSize": str(stored.size), "LastModified": _ci_time(stored.last_modified),
            "Etag": f'"{stored.etag}"'}


def _false(text: str | None, name: str) -> None:
    if (text or "false").strip().lower() not in ("false", "0"):
        raise errors.not_implemented(f"{name}=true (writing x-cos-meta-<hash>)")


def sync_file_hash(store: Store, request: Request) -> Response:
    """GET /<key>?ci-process=filehash&type=md5 on the cos host."""
    algorithm = ALGORITHMS.get((request.query.get("type") or "").lower())
    if algorithm is None:
        raise errors.invalid_argument("type must be one of md5, sha1, sha256.")
    _false(request.query.get("addtoheader"), "addtoheader")
    stored = store.head(request.bucket, request.key)
    if stored.size >= SYNC_LIMIT:
        raise errors.invalid_argument("The file is too large for a synchronous hash (it must be under 128 MB); "
                                      "submit a FileHashCode job (POST /file_jobs) instead.")
    value, stored = _digest(store, request.bucket, request.key, algorithm)
    return _xml({"FileHashCodeResult": _result(value, stored, algorithm),
                 "Input": {"Bucket": request.bucket, "Object": request.key, "Region": request.region}})


class FileJobs:
    """The ci host's /file_jobs: FileHashCode jobs hashed by a thread each, then called back."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._threads: list[threading.Thread] = []
        self.callback_sink: CallbackSink | None = None
        self.delay = 0.0
        self.created = 0
        self.failures: dict[tuple[str, str], tuple[str, str]] = {}  # (bucket, key) -> (Code, Message)
        # The file-processing queue's callback format, used when a job names none: a job's
        # CallBackFormat "takes priority over that of the queue" (default XML),
        # https://cloud.tencent.com/document/api/436/83108.
        self.queue_callback_format = "XML"

    # --- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path.rstrip("/") == "/file_jobs":
            return self._create(request)
        if request.method == "GET" and request.path.startswith("/file_jobs/"):
            return self._describe(request.bucket, request.path[len("/file_jobs/"):].split(","))
        raise errors.not_implemented(f"{request.method} {request.path} on the CI host")

    def _create(self, request: Request) -> Response:
        try:
            body = xmltodict.parse(request.body.read_all(limit=64 * 1024)).get("Request") or {}
        except Exception:
            raise errors.malformed_xml() from None
        if body.get("Tag") != "FileHashCode":
            raise errors.not_implemented(f"file job Tag {body.get('Tag')!r} (only FileHashCode)")
        key = ((body.get("Input") or {}).get("Object") or "").lstrip("/")
        if not key:
            raise errors.invalid_argument("Input.Object is required.")
        operation = body.get("Operation") or {}
        config = operation.get("FileHashCodeConfig") or {}
        algorithm = ALGORITHMS.get(str(config.get("Type") or "").lower())
        if algorithm is None:
            raise errors.invalid_argument("FileHashCodeConfig.Type must be one of MD5, SHA1, SHA256.")
        _false(config.get("AddToHeader"), "AddToHeader")
        user_data = operation.get("UserData")
        if user_data is not None and (len(user_data) > MAX_USER_DATA
                                      or any(not " " <= ch <= "~" for ch in user_data)):
            raise errors.invalid_argument("UserData must be at most 1024 printable ASCII characters.")
        callback_format = body.get("CallBackFormat") or self.queue_callback_format
        if callback_format not in ("XML", "JSON"):
            raise errors.invalid_argument("CallBackFormat must be XML or JSON.")
        job_id = "f" + uuid.uuid4().hex
        detail: dict[str, Any] = {
            "Code": "Success", "Message": None, "JobId": job_id, "State": "Submitted", "Progress": "0",
            "CreationTime": _ci_time(time.time()), "EndTime": "-", "StartTime": "-",
            "QueueId": body.get("QueueId") or FILE_QUEUE_ID, "Tag": "FileHashCode",
            "Input": {"BucketId": request.bucket, "Object": key, "Region": request.region},
            "Operation": {"FileHashCodeConfig": {"Type": str(config.get("Type")), "AddToHeader": "false"},
                          **({"UserData": user_data} if user_data is not None else {})},
        }
        with self._lock:
            self._jobs[(request.bucket, job_id)] = detail
            self.created += 1
            answer = copy.deepcopy(detail)
        thread = threading.Thread(target=self._run, name=f"file-job-{job_id[:8]}", daemon=True,
                                  args=(request.bucket, job_id, key, algorithm, body.get("CallBack") or "",
                                        callback_format))
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return _xml({"JobsDetail": answer})

    def _describe(self, bucket: str, job_ids: list[str]) -> Response:
        ids = [job_id.strip() for job_id in job_ids if job_id.strip()]
        if len(ids) > MAX_IDS:
            raise errors.invalid_argument(f"At most {MAX_IDS} job ids.")
        found, missing = [], []
        with self._lock:
            for job_id in ids:
                detail = self._jobs.get((bucket, job_id))
                if detail is None:
                    missing.append(job_id)
                else:
                    found.append(copy.deepcopy(detail))
        content: dict[str, Any] = {}
        if found:
            content["JobsDetail"] = found
        if missing:
            content["NonExistJobIds"] = ",".join(missing)
        return _xml(content)

    # --- the job ------------------------------------------------------------------------------

    def _run(self, bucket: str, job_id: str, key: str, algorithm: str, url: str, callback_format: str) -> None:
        if self.delay:
            time.sleep(self.delay)
        started = _ci_time(time.time())
        with self._lock:
            self._jobs[(bucket, job_id)].update(State="Running", StartTime=started)
        failure = self.failures.get((bucket, key))
        result: dict[str, str] | None = None
        if failure is not None:
            update: dict[str, Any] = {"State": "Failed", "Code": failure[0], "Message": failure[1]}
        else:
            try:
                value, stored = _digest(self._store, bucket, key, algorithm)
                update = {"State": "Success"}
                result = _result(value, stored, algorithm)
            except errors.CosError as error:
                update = {"State": "Failed", "Code": error.code, "Message": error.message}
        with self._lock:
            detail = self._jobs[(bucket, job_id)]
            detail.update(update, EndTime=_ci_time(time.time()), Progress="100")
            if result is not None:
                # FileHashCodeResult sits between FileHashCodeConfig and UserData, as the published answer shows.
                operation = detail["Operation"]
                detail["Operation"] = {"FileHashCodeConfig": operation["FileHashCodeConfig"],
                                       "FileHashCodeResult": result,
                                       **({"UserData": operation["UserData"]} if "UserData" in operation else {})}
            finished = copy.deepcopy(detail)
        self._deliver(url, job_id, finished, callback_format)

    def _deliver(self, url: str, job_id: str, detail: dict[str, Any], callback_format: str) -> None:
        envelope = {"EventName": "TaskFinish", "JobsDetail": detail}
        if callback_format == "JSON":
            body, content_type = json.dumps({"Response": envelope}).encode("utf-8"), "application/json"
        else:
            body = xmltodict.unparse({"Response": envelope}).encode("utf-8")
            content_type = "application/xml"
        callback = FileJobCallback(url, body, content_type, job_id)
        sink = self.callback_sink
        if sink is not None:
            sink(callback)
            return
        if not url:
            return  # CI would post to the queue's callback; the emulator has none: lost
        try:
            request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        except OSError:
            pass  # a callback CI could not deliver is simply lost

    # --- direct access --------------------------------------------------------------------------

    def wait(self, timeout: float = 10.0) -> None:
        """Until every job created so far has finished and made its callback."""
        end = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))

    def find(self, bucket: str, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            detail = self._jobs.get((bucket, job_id))
            return copy.deepcopy(detail) if detail is not None else None
