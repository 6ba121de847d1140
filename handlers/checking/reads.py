"""Reading an object's content for its hash: streamed through MD5, or as ranges in parallel for a big one
(checking/ranged.py), within the invocation's deadline, each read's speed recorded for planning the next
(checking/throughput.py)."""
from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers.checking.ranged import Buffers, RangedRead, ranged_md5
from handlers.checking.throughput import HashEstimate, HashThroughput
from handlers.checking.verify import out_of_time
from handlers.config import Settings
from handlers.deadline import LOCAL_BUDGET_SECONDS, Deadline
from handlers.errors import PreconditionFailed, TransientError
from handlers.intake.models import ObjectState, OutputObject
from handlers.storage.clients import Clients
from handlers.storage.cos import ObjectStore, status_of, translate

CHUNK_BYTES = 1 << 20
PIECE_BYTES = 256 << 10


class ContentReader:
    """The content reads of one container's objects. The learnt speed is shared by every bound copy."""

    def __init__(self, clients: Clients, settings: Settings, deadline: Deadline | None = None,
                 throughput: HashThroughput | None = None):
        self._clients = clients
        self._settings = settings
        self._deadline = deadline
        # Shared by every bound copy: what the container's reads achieved, for planning the next.
        self._throughput = throughput or HashThroughput(settings.hash_mib_per_second)

    def bound(self, deadline: Deadline) -> ContentReader:
        """The same reader, its reads ending by the time the invocation has left."""
        return ContentReader(self._clients, self._settings, deadline, self._throughput)

    def _read_kind(self, size: int) -> str:
        s = self._settings
        ranged = size >= s.parallel_read_bytes and size > s.read_part_bytes and s.read_connections > 1
        return "ranged" if ranged else "single"

    def hash_estimate(self, size: int) -> HashEstimate:
        """How long hashing `size` bytes is expected to take, from what this container measured."""
        return self._throughput.estimate(size, self._read_kind(size))

    def hash_skipped(self, size: int) -> None:
        self._throughput.skipped(self._read_kind(size))

    def _content_cos(self, region: str) -> CosS3Client:
        """For an output's content, streamed through MD5: its body may read until the deadline
        (every other answer, the function's own records included, within COS_TIMEOUT_SECONDS)."""
        return self._clients.cos(region, self._deadline, content=True)

    def content_md5(self, target: OutputObject, etag: str, size: int = -1) -> str:
        """Stream the object through MD5; If-Match pins the version the HEAD saw. An object of
        PARALLEL_READ_MIN_MB or more (`size`, from that HEAD) is read as ranges in parallel."""
        kind = self._read_kind(size)
        started = time.monotonic()
        md5 = self._ranged_md5(target, etag, size) if kind == "ranged" else self._streamed_md5(target, etag)
        if size >= 0:
            self._throughput.record(size, time.monotonic() - started, kind)
        return md5

    def _streamed_md5(self, target: OutputObject, etag: str) -> str:
        try:
            response = self._content_cos(target.region).get_object(
                Bucket=target.bucket, Key=target.key, IfMatch=f'"{etag}"')
        except (CosServiceError, CosClientError) as exc:
            if status_of(exc) in (404, 412):
                raise TransientError(f"GET {target.key}: the object changed since it was read") from None
            raise translate(exc, "GET", target) from None
        expected = int(response.get("Content-Length", -1))
        digest = _Md5Behind()
        received = 0
        stream = response["Body"].get_raw_stream()
        try:
            for chunk in _chunks(stream):
                digest.update(chunk)
                received += len(chunk)
                if self._deadline is not None and self._deadline.remaining() <= 0:
                    # Slower than the check before the GET assumed: stop while there is time to answer.
                    raise _OutOfTime(out_of_time(max(expected, received), f"{received} read when the "
                                                                          "invocation's time ran out"))
        except _OutOfTime as exc:
            stream.close()  # the rest of the body is never read: the connection cannot be reused
            raise TransientError(str(exc)) from None
        except Exception as exc:  # urllib3/requests raise many types for a broken stream
            raise TransientError(f"GET {target.key}: the body stream failed after {received} bytes: {exc}") from None
        finally:
            md5 = digest.hexdigest()
        if expected >= 0 and received != expected:
            raise TransientError(f"GET {target.key}: got {received} of {expected} bytes")
        return md5

    def _ranged_md5(self, target: OutputObject, etag: str, size: int) -> str:
        plan = RangedRead(size, self._settings.read_part_bytes, self._settings.read_connections)
        deadline = self._deadline or Deadline.after(LOCAL_BUDGET_SECONDS)
        return ranged_md5(plan, lambda first, last, buffers: self._range(target, etag, first, last, buffers), deadline,
                          lambda hashed: out_of_time(size, f"{hashed} hashed when the invocation's time ran out"))

    def _range(self, target: OutputObject, etag: str, first: int, last: int,
               buffers: Buffers) -> Generator[memoryview, None, None]:
        """Bytes first..last of the version with `etag`. A 412 (or 404) means the object was
        rewritten (or deleted) during the read: PreconditionFailed, never retried here, as the
        bytes already hashed belong to another version."""
        where = f"GET {target.bucket}/{target.key} bytes {first}-{last}"
        try:
            response = self._content_cos(target.region).get_object(
                Bucket=target.bucket, Key=target.key, Range=f"bytes={first}-{last}", IfMatch=f'"{etag}"')
        except (CosServiceError, CosClientError) as exc:
            if status_of(exc) in (404, 412):
                raise PreconditionFailed(f"{where}: {status_of(exc)}: the object changed while it was read; "
                                         "it is decided on a later try") from None
            raise translate(exc, "GET", target) from None
        stream = response["Body"].get_raw_stream()
        received, complete = 0, False
        try:
            if int(response.get("Content-Length", -1)) != last - first + 1:
                raise TransientError(f"{where}: answered {response.get('Content-Length')} bytes")
            for chunk in _chunks_into(stream, buffers):
                received += len(chunk)
                yield chunk
            complete = True
        except TransientError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:  # urllib3/requests raise many types for a broken stream
            raise TransientError(f"{where}: the body stream failed after {received} bytes: {exc}") from None
        finally:
            if not complete:
                stream.close()  # the rest is never read: the connection cannot be reused


class Inspected:
    """What checking/verify.check_object needs (its Inspector): the HEAD from the store, the rest from the reader."""

    def __init__(self, store: ObjectStore, reader: ContentReader):
        self._store = store
        self._reader = reader

    def head(self, target: OutputObject) -> ObjectState | None:
        return self._store.head(target)

    def hash_estimate(self, size: int) -> HashEstimate:
        return self._reader.hash_estimate(size)

    def hash_skipped(self, size: int) -> None:
        self._reader.hash_skipped(size)

    def content_md5(self, target: OutputObject, etag: str, size: int = -1) -> str:
        return self._reader.content_md5(target, etag, size)


class _OutOfTime(Exception):
    pass


class _Md5Behind:
    """MD5 computed by a thread of its own, one chunk behind the reader. hashlib lets go of the
    GIL while it hashes, so the next chunk comes off the socket meanwhile: a body streams at
    about MD5's own speed instead of 0.7 of it (bench/: streaming verification). One chunk
    waits at most, so a check holds three chunks at a time, whatever the object's size."""

    def __init__(self) -> None:
        self._digest = hashlib.md5()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._hash, name="md5", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        """Waits for the chunks given so far, and ends the thread."""
        self._chunks.put(None)
        self._thread.join()
        return self._digest.hexdigest()


def _chunks(stream: Any, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while True:
        chunk = stream.read(size, decode_content=False)
        if not chunk:
            return
        yield chunk


def _chunks_into(stream: Any, buffers: Buffers) -> Iterator[memoryview]:
    """The body as views of reused buffers (handlers/checking/ranged.Buffers says why). urllib3 cannot
    read into a caller's buffer (its readinto reads a new bytes object and copies it), so the
    body is read in 256 KiB pieces and copied in: a temporary that small is recycled in place
    by the allocator (about 16,000 page faults per GiB, against 112,000 with whole 1 MiB
    reads; 64 KiB pieces fault as little and cost the readers more calls)."""
    while True:
        buffer = buffers.take()
        view, filled = memoryview(buffer), 0
        while filled < len(buffer):
            data = stream.read(min(PIECE_BYTES, len(buffer) - filled), decode_content=False)
            if not data:
                break
            view[filled:filled + len(data)] = data
            filled += len(data)
        if not filled:
            buffers.give(buffer)
            return
        yield view[:filled]
        if filled < len(buffer):
            return

