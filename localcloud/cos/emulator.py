"""`CosEmulator`: the local COS + CI service, its lifecycle and direct (non-HTTP) state access."""
from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Union

from ..serving import BackgroundServer
from . import errors
from .attributes import DEFAULT_CONTENT_TYPE, normalise_metadata
from .auth import Credentials
from .ci import CiApi, JobRegistry
from .cos_api import CosApi
from .faults import Fault, FaultInjector, RequestLog, RequestRecord
from .file_jobs import ARCHIVED, CallbackSink, FileJobs
from .server import EmulatorHttpServer, Services
from .store import ObjectAttributes, Store, read_chunks

DEFAULT_REGION = "ap-chongqing"

Data = Union[bytes, bytearray, memoryview, str, PathLike, Iterable[bytes]]  # noqa: UP007 - a runtime alias: `|` on typing objects needs 3.10+ at import


def _chunks_of(data: Data) -> Iterable[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return [bytes(data)]
    if isinstance(data, (str, PathLike)):
        return _file_chunks(Path(data))
    return data


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        yield from read_chunks(source)


class CosEmulator(BackgroundServer):
    """Tencent COS's XML API and CI's job API on a local port, for the real cos-python-sdk-v5.

    `root=None` keeps objects in a temporary directory removed by `stop()`.
    """

    _label = "COS emulator"

    def __init__(
        self,
        secret_id: str = "AKIDlocal",
        secret_key: str = "local-secret",
        token: str | None = None,
        root: str | PathLike | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bandwidth_per_connection: int | None = None,
    ):
        self._own_root = root is None
        self._root = Path(tempfile.mkdtemp(prefix="cos-emulator-")) if root is None else Path(root)
        self._store = Store(self._root)
        self._jobs = JobRegistry()
        self._file_jobs = FileJobs(self._store)
        self._faults = FaultInjector()
        self._log = RequestLog()
        self._services = Services(
            credentials=Credentials(secret_id, secret_key, token),
            cos=CosApi(self._store), ci=CiApi(self._jobs, self._file_jobs), faults=self._faults, log=self._log,
        )
        self.limit_bandwidth(bandwidth_per_connection)
        super().__init__((host, port))

    # ------------------------------------------------------------- lifecycle

    def _new_server(self) -> EmulatorHttpServer:
        return EmulatorHttpServer(self._address, self._services)

    def stop(self) -> None:
        super().stop()
        if self._own_root:
            shutil.rmtree(self._root, ignore_errors=True)

    @property
    def root(self) -> Path:
        """The directory holding object files."""
        return self._root

    # ---------------------------------------------------------- direct state

    def create_bucket(self, bucket: str, region: str = DEFAULT_REGION) -> None:
        self._store.create_bucket(bucket, region)

    def put_object(
        self,
        bucket: str,
        key: str,
        data: Data,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        part_size: int | None = None,
        last_modified: float | None = None,
    ) -> str:
        """Store an object; returns its ETag without quotes. With part_size it looks multipart-uploaded."""
        if part_size is not None and part_size < 1:
            raise ValueError("part_size must be a positive byte count")
        attributes = ObjectAttributes(content_type=content_type, metadata=normalise_metadata(metadata))
        try:
            stored = self._store.put(
                bucket, key, _chunks_of(data), attributes, part_size=part_size, last_modified=last_modified,
            )
        except errors.CosError as error:
            raise KeyError(f"{bucket}: {error.message}") from None
        return stored.etag

    def object_bytes(self, bucket: str, key: str) -> bytes | None:
        try:
            _, content = self._store.open(bucket, key)
        except errors.CosError:
            return None
        with content:
            return content.read()

    def object_info(self, bucket: str, key: str) -> dict[str, Any] | None:
        stored = self._store.find(bucket, key)
        if stored is None:
            return None
        return {
            "etag": stored.etag,
            "size": stored.size,
            "last_modified": stored.last_modified,
            "content_type": stored.attributes.content_type,
            "metadata": dict(stored.attributes.metadata),
            "crc64": stored.crc64,
        }

    def tags(self, bucket: str, key: str) -> dict[str, str] | None:
        stored = self._store.find(bucket, key)
        return None if stored is None else dict(stored.tags)

    def set_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        try:
            self._store.set_tags(bucket, key, dict(tags))
        except errors.CosError as error:
            raise KeyError(f"{bucket}/{key}: {error.message}") from None

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        try:
            return [stored.key for stored in self._store.list_objects(bucket, prefix)]
        except errors.CosError as error:
            raise KeyError(f"{bucket}: {error.message}") from None

    # ------------------------------------------------------------------- CI

    def register_job(self, bucket: str, jobs_detail: Mapping[str, Any]) -> None:
        """A job CI knows; without a QueueId it runs in the bucket's default queue (DEFAULT_QUEUE_ID)."""
        self._jobs.register(bucket, jobs_detail)

    def declare_queue(self, bucket: str, queue_id: str, name: str = "", state: str = "Active",
                      category: str = "Transcoding") -> None:
        """A media queue the bucket's queue API lists (the queues jobs name are known already)."""
        self._jobs.declare_queue(bucket, queue_id, name, state, category)

    def load_jobs(self, path: str | PathLike) -> int:
        return self._jobs.load(path)

    @property
    def callback_sink(self) -> CallbackSink | None:
        """Receives each finished file job's TaskFinish callback (a FileJobCallback) instead of an HTTP
        POST to the job's CallBack URL; None: POST it there (a job without CallBack: lost)."""
        return self._file_jobs.callback_sink

    @callback_sink.setter
    def callback_sink(self, sink: CallbackSink | None) -> None:
        self._file_jobs.callback_sink = sink

    @property
    def file_job_delay(self) -> float:
        """Seconds each FileHashCode job waits before it is hashed."""
        return self._file_jobs.delay

    @file_job_delay.setter
    def file_job_delay(self, seconds: float) -> None:
        self._file_jobs.delay = seconds

    @property
    def file_queue_callback_format(self) -> str:
        """The file-processing queue's callback format (XML or JSON), for jobs that name none."""
        return self._file_jobs.queue_callback_format

    @file_queue_callback_format.setter
    def file_queue_callback_format(self, value: str) -> None:
        self._file_jobs.queue_callback_format = value

    @property
    def file_jobs_created(self) -> int:
        return self._file_jobs.created

    def file_job(self, bucket: str, job_id: str) -> dict[str, Any] | None:
        """A FileHashCode job as GET /file_jobs/<id> describes it, or None."""
        return self._file_jobs.find(bucket, job_id)

    def fail_file_jobs(self, bucket: str, key: str, failure: tuple[str, str] | None = ARCHIVED) -> None:
        """From now on every FileHashCode job on bucket/key ends `Failed` with this (Code, Message), as one on
        an archived object does; None: hash it again."""
        if failure is None:
            self._file_jobs.failures.pop((bucket, key), None)
        else:
            self._file_jobs.failures[(bucket, key)] = failure

    def wait_for_file_jobs(self, timeout: float = 10.0) -> None:
        """Until every file job created so far has been hashed and its callback made."""
        self._file_jobs.wait(timeout)

    # ------------------------------------------------------------ bandwidth

    def limit_bandwidth(self, per_connection: int | None) -> None:
        """Send every object body at most `per_connection` bytes per second on each connection
        (None: no limit), as an object store limits each connection (see server.Services)."""
        if per_connection is not None and per_connection < 1:
            raise ValueError("per_connection must be a positive number of bytes per second, or None")
        self._services.bandwidth_per_connection = per_connection

    @property
    def bandwidth_per_connection(self) -> int | None:
        return self._services.bandwidth_per_connection

    # ---------------------------------------------------------------- faults

    def add_fault(
        self,
        method: str | None = None,
        key: str | re.Pattern[str] | None = None,
        query: str | None = None,
        service: str | None = "cos",
        status: int | None = None,
        code: str | None = None,
        delay: float | None = None,
        reset: bool = False,
        truncate: int | None = None,
        copy_error_body: bool = False,
        times: int | None = 1,
        byte_range: str | None = None,
        trickle: float | None = None,
        trickle_body: float | None = None,
    ) -> Fault:
        return self._faults.add(Fault(
            method=method, key=key, query=query, service=service, status=status, code=code, delay=delay,
            reset=reset, truncate=truncate, copy_error_body=copy_error_body, times=times, byte_range=byte_range,
            trickle=trickle, trickle_body=trickle_body,
        ))

    def clear_faults(self) -> None:
        self._faults.clear()

    # ----------------------------------------------------------- request log

    @property
    def requests(self) -> list[RequestRecord]:
        return self._log.snapshot()

    def clear_requests(self) -> None:
        self._log.clear()
