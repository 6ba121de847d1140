"""CI's file-hash API (https://cloud.tencent.com/document/api/436/121027 for the synchronous `GET /<key>?ci-process=
filehash`, 83108 and 83109 for the `FileHashCode` file jobs): its calls through the SDK, its answers read into a
`FileJob`, its failures sorted into the function's kinds. What to do with a hash is checking/serverhash.py's."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers import exchange
from handlers.ci.calls import ci_call
from handlers.config import Settings
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.models import OutputObject
from handlers.intake.nodes import MalformedCallback, as_list
from handlers.storage.clients import Clients

SYNC_LIMIT = 128 * 1024 * 1024  # the sync API hashes files "小于128MB" (smaller than 128 MB)
HASH_TAG = "FileHashCode"  # the Tag of a file job CI runs for ci_create_file_hash_job


# --- CI's account of a file job (pure) ------------------------------------------------------

@dataclass(frozen=True)
class FileJob:
    job_id: str
    state: str  # Submitted, Running, Success, Failed, ...
    bucket: str
    region: str
    key: str
    user_data: str
    md5: str = ""  # FileHashCodeResult.MD5, once Success
    etag: str = ""  # FileHashCodeResult.Etag, quotes taken off
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state in ("Submitted", "Running")


def _text(node: Any, *path: str) -> str:
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return node.strip() if isinstance(node, str) else ""


def file_job_from(node: Any) -> FileJob:
    """A JobsDetail node of GET /file_jobs/<id> as the SDK's xml_to_dict gives it (empty elements are None),
    shaped as tests/fixtures/ci/describemediajob-filehashcode-1.xml."""
    if not isinstance(node, dict) or not _text(node, "JobId"):
        raise MalformedCallback("CI's file job has no JobId")
    return FileJob(
        job_id=_text(node, "JobId"), state=_text(node, "State"), bucket=_text(node, "Input", "BucketId"),
        region=_text(node, "Input", "Region"), key=_text(node, "Input", "Object").lstrip("/"),
        user_data=_text(node, "Operation", "UserData"),
        md5=_text(node, "Operation", "FileHashCodeResult", "MD5").lower(),
        etag=_text(node, "Operation", "FileHashCodeResult", "Etag").strip('"').lower(),
        message=" ".join(filter(None, (_text(node, "Code"), _text(node, "Message")))))


# --- the adapter ---------------------------------------------------------------------------

class SyncRefused(Exception):
    """The synchronous hash refused the object (its size or the region): a file job may still do it."""


class CiHashing:
    """CI's hash APIs through the SDK, failures sorted into the function's kinds."""

    def __init__(self, clients: Clients, settings: Settings):
        self._clients = clients
        self._settings = settings

    def sync_md5(self, target: OutputObject, deadline: Deadline) -> tuple[str, str]:
        """(MD5, ETag or "") as the synchronous filehash answers them."""
        where = f"GET {target.bucket}/{target.key}?ci-process=filehash"
        try:
            answer = self._clients.cos(target.region, deadline).file_hash(
                Bucket=target.bucket, Key=target.key, Type="md5", AddToHeader=False)
        except CosClientError as exc:
            raise TransientError(f"{where}: {exc}") from None
        except exchange.BROKEN_ANSWER as exc:  # the SDK reads and parses the streamed answer after the exchange
            raise TransientError(f"{where}: the answer could not be read: {type(exc).__name__}: {exc}") from None
        except CosServiceError as exc:
            status, code = exc.get_status_code(), exc.get_error_code() or ""
            message = f"{where}: {status} {code} {exc.get_error_msg() or ''}".strip()
            if status == 404:
                raise TransientError(f"{message} (the object changed since it was read)") from None
            if status == 429 or status >= 500:
                raise TransientError(message) from None
            if status in (400, 501):
                raise SyncRefused(message) from None
            raise StorageError(message + (" (the execution role needs cos:GetObject, and the bucket CI's file "
                                          "processing service)" if status == 403 else "")) from None
        result = (answer or {}).get("FileHashCodeResult") if isinstance(answer, dict) else None
        md5 = _text(result, "MD5").lower()
        if len(md5) != 32:
            raise TransientError(f"{where}: the answer carries no MD5")
        return md5, _text(result, "Etag").strip('"').lower()

    def submit(self, target: OutputObject, user_data: str, deadline: Deadline) -> str:
        """Start a FileHashCode job on the object; its JobId."""
        options: dict[str, Any] = {"UserData": user_data}
        if self._settings.hash_callback_url:
            options["CallBack"] = self._settings.hash_callback_url
        if self._settings.hash_queue_id:
            options["QueueId"] = self._settings.hash_queue_id
        answer = self._call(f"POST /file_jobs for {target.bucket}/{target.key}", lambda: self._clients.ci(
            target.region, deadline).ci_create_file_hash_job(
                Bucket=target.bucket, InputObject=target.key,
                FileHashCodeConfig={"Type": "MD5", "AddToHeader": "false"}, **options))
        jobs = as_list((answer or {}).get("JobsDetail")) if isinstance(answer, dict) else []
        job_id = _text(jobs[0], "JobId") if jobs else ""
        if not job_id:
            raise TransientError(f"POST /file_jobs for {target.bucket}/{target.key}: the answer names no JobId")
        return job_id

    def describe(self, bucket: str, region: str, job_id: str, deadline: Deadline) -> FileJob | None:
        """CI's account of the file job, or None when CI does not know it."""
        answer = self._call(f"GET /file_jobs/{job_id} on {bucket}", lambda: self._clients.ci(
            region, deadline).ci_get_file_process_jobs(Bucket=bucket, JobIDs=job_id))
        if answer is None:
            return None
        for node in as_list(answer.get("JobsDetail") if isinstance(answer, dict) else None):
            job = file_job_from(node)
            if job.job_id == job_id:
                return job
        return None

    @staticmethod
    def _call(where: str, request: Callable[[], Any]) -> Any:
        return ci_call(where, request, "ci:CreateFileProcessJobs, ci:DescribeFileProcessJob and cam:PassRole")

