"""The one place that builds COS/CI clients, and a small storage adapter over them.

The adapter speaks the function's language (ObjectState, tags as a dict, an MD5) and turns
SDK failures into two kinds: `TransientError` (try again) and `StorageError` (give up).
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import urllib.request
from collections.abc import Generator, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers import exchange
from handlers.checking.ranged import Buffers, RangedRead, ranged_md5
from handlers.checking.throughput import HashEstimate, HashThroughput
from handlers.checking.verify import out_of_time
from handlers.config import Settings
from handlers.deadline import LOCAL_BUDGET_SECONDS, MIN_ATTEMPT_SECONDS, Deadline
from handlers.errors import NotFound, PreconditionFailed, StorageError, TransientError
from handlers.intake.models import ObjectState, OutputObject

CHUNK_BYTES = 1 << 20
PIECE_BYTES = 256 << 10
# Headers that are the object's metadata: a multipart copy must set them again itself.
_METADATA = ("content-type", "cache-control", "content-disposition", "content-encoding", "expires")
_RETRYABLE_CODES = {"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable"}
_CLIENTS_KEPT = 64  # clients per deadline: an invocation uses a few (its own, the notifications' budget)

# At DEBUG the SDK logs request headers, security token included, and at ERROR every 4xx,
# expected ones too (a missing object's tag read). Every failure reaches our own log and
# response through TransientError/StorageError, so the SDK stays quiet.
logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)


class Clients:
    """COS and CI clients per region, sharing one connection pool sized for our concurrency.
    Each request is bounded as a whole (handlers/exchange.py): COS_TIMEOUT_SECONDS for the
    exchange, never past the invocation's deadline. An object's content read for its hash
    (`content=True`) is the one answer whose body the deadline alone bounds; every other, the
    SDK's streamed ones included (an audit report, the synchronous filehash), is cut at
    COS_TIMEOUT_SECONDS like a HEAD."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._session = requests.Session()
        _read_environment_once(self._session)
        # Object checks and tag reads run side by side, and a big object's check reads on
        # READ_CONNECTIONS connections of its own: a connection for each keeps them all alive.
        pool = settings.concurrency * (1 + settings.read_connections) + 4
        exchange.mount(self._session, exchange.BoundedAdapter(pool_connections=8, pool_maxsize=pool))
        self._clients: dict[tuple[str, str, exchange.Limit], CosS3Client] = {}
        self._lock = threading.Lock()

    def cos(self, region: str, deadline: Deadline | None = None, content: bool = False) -> CosS3Client:
        return self._client("cos", region, self._limit(deadline, content))

    def ci(self, region: str, deadline: Deadline | None = None) -> CosS3Client:
        return self._client("ci", region, self._limit(deadline))

    def _limit(self, deadline: Deadline | None, content: bool = False) -> exchange.Limit:
        """COS_TIMEOUT_SECONDS for each exchange, and never past the deadline: no request outlives
        it. `content`: the body may stream until the deadline (exchange.Limit)."""
        if deadline is None:
            return exchange.Limit(self._settings.cos_timeout)
        if deadline.remaining() < MIN_ATTEMPT_SECONDS:
            raise TransientError("the invocation's time is up; nothing more was sent")
        return exchange.Limit(self._settings.cos_timeout, deadline.at, content)

    def _client(self, service: str, region: str, limit: exchange.Limit) -> CosS3Client:
        # The SDK fixes a client's timeout (the limit the adapter applies) at construction;
        # clients are cheap and share the session: one per deadline in use, the last few kept.
        with self._lock:
            client = self._clients.get((service, region, limit))
            if client is None:
                if len(self._clients) >= _CLIENTS_KEPT:
                    del self._clients[next(iter(self._clients))]
                client = CosS3Client(self._config(service, region, limit), retry=0, session=self._session)
                self._clients[(service, region, limit)] = client
            return client

    def _config(self, service: str, region: str, timeout: exchange.Limit) -> CosConfig:
        s = self._settings
        # Timeout goes to requests untouched, and the session's BoundedAdapter reads the Limit.
        options: dict[str, Any] = dict(Region=region, SecretId=s.secret_id, SecretKey=s.secret_key, Token=s.token,
                                       Timeout=timeout, Scheme="https")
        if service == "ci":
            # With IP/Port set the SDK builds Host from Endpoint; name the CI service there.
            options["Endpoint"] = f"ci.{region}.myqcloud.com"
        if s.cos_endpoint is not None:
            options.update(Scheme=s.cos_endpoint.scheme, IP=s.cos_endpoint.host, Port=s.cos_endpoint.port)
        return CosConfig(**options)


class ObjectStore:
    """What verification and actions need from COS, nothing more."""

    def __init__(self, clients: Clients, settings: Settings, deadline: Deadline | None = None,
                 throughput: HashThroughput | None = None):
        self._clients = clients
        self._settings = settings
        self._deadline = deadline
        # Shared by every bound copy: what the container's reads achieved, for planning the next.
        self._throughput = throughput or HashThroughput(settings.hash_mib_per_second)

    def bound(self, deadline: Deadline) -> ObjectStore:
        """The same store, with every request's timeout capped by the time the invocation has left."""
        return ObjectStore(self._clients, self._settings, deadline, self._throughput)

    def _read_kind(self, size: int) -> str:
        s = self._settings
        ranged = size >= s.parallel_read_bytes and size > s.read_part_bytes and s.read_connections > 1
        return "ranged" if ranged else "single"

    def hash_estimate(self, size: int) -> HashEstimate:
        """How long hashing `size` bytes is expected to take, from what this container measured."""
        return self._throughput.estimate(size, self._read_kind(size))

    def hash_skipped(self, size: int) -> None:
        self._throughput.skipped(self._read_kind(size))

    def _cos(self, region: str) -> CosS3Client:
        return self._clients.cos(region, self._deadline)

    def _content_cos(self, region: str) -> CosS3Client:
        """For an output's content, streamed through MD5: its body may read until the deadline
        (every other answer, the function's own records included, within COS_TIMEOUT_SECONDS)."""
        return self._clients.cos(region, self._deadline, content=True)

    def head(self, target: OutputObject) -> ObjectState | None:
        try:
            headers = self._cos(target.region).head_object(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) == 404:
                return None  # no such key, or no such bucket: COS cannot tell them apart on HEAD
            raise _translate(exc, "HEAD", target) from None
        return _state(headers)

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
            if _status(exc) in (404, 412):
                raise TransientError(f"GET {target.key}: the object changed since it was read") from None
            raise _translate(exc, "GET", target) from None
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
            if _status(exc) in (404, 412):
                raise PreconditionFailed(f"{where}: {_status(exc)}: the object changed while it was read; "
                                         "it is decided on a later try") from None
            raise _translate(exc, "GET", target) from None
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

    def tags(self, target: OutputObject) -> dict[str, str] | None:
        """The object's tags, or None when the object does not exist."""
        try:
            data = self._cos(target.region).get_object_tagging(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(exc, "GET tagging", target) from None
        tag_set = (data or {}).get("TagSet") or {}
        return {str(t.get("Key")): str(t.get("Value") or "") for t in tag_set.get("Tag") or []}

    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None:
        body = {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}}
        try:
            self._cos(target.region).put_object_tagging(Bucket=target.bucket, Key=target.key, Tagging=body)
        except (CosServiceError, CosClientError) as exc:
            raise _translate(exc, "PUT tagging", target) from None

    def delete_tags(self, target: OutputObject) -> None:
        """Remove every tag (a PUT of an empty set is not how COS clears them)."""
        try:
            self._cos(target.region).delete_object_tagging(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) == 404:
                return
            raise _translate(exc, "DELETE tagging", target) from None

    def copy(self, source: OutputObject, state: ObjectState, dest: OutputObject) -> None:
        """Server-side copy of exactly the version `state` describes (If-Match on its ETag),
        metadata included; objects past the multipart threshold are copied in parts."""
        client = self._cos(dest.region)
        copy_source = {"Bucket": source.bucket, "Key": source.key, "Region": source.region}
        if_match = f'"{state.etag}"'
        try:
            if state.size < self._settings.multipart_copy_bytes:
                client.copy_object(Bucket=dest.bucket, Key=dest.key, CopySource=copy_source,
                                   CopyStatus="Copy", CopySourceIfMatch=if_match)
            else:
                self._copy_in_parts(client, copy_source, state, dest, if_match)
        except (CosServiceError, CosClientError) as exc:
            raise _translate(exc, "COPY", dest) from None

    def _copy_in_parts(self, client: CosS3Client, copy_source: dict[str, str], state: ObjectState,
                       dest: OutputObject, if_match: str) -> None:
        headers = dict(state.metadata)
        metadata = {k: v for k, v in headers.items() if k.startswith("x-cos-meta-")}
        upload = client.create_multipart_upload(
            Bucket=dest.bucket, Key=dest.key, Metadata=metadata,
            **{_SDK_NAMES[k]: v for k, v in headers.items() if k in _SDK_NAMES})
        upload_id = upload["UploadId"]
        try:
            parts = []
            part_size = self._settings.copy_part_bytes
            for number, start in enumerate(range(0, state.size, part_size), start=1):
                end = min(start + part_size, state.size) - 1
                result = client.upload_part_copy(
                    Bucket=dest.bucket, Key=dest.key, PartNumber=number, UploadId=upload_id,
                    CopySource=copy_source, CopySourceRange=f"bytes={start}-{end}", CopySourceIfMatch=if_match)
                etag = result.get("ETag") if isinstance(result, dict) else None
                if not etag:
                    # Upload Part - Copy can answer 200 with an error body, which the SDK returns as the
                    # result: no ETag, no part. Retryable, like a copy's (the upload is aborted below).
                    error = result if isinstance(result, dict) else {}
                    raise TransientError(f"UploadPartCopy {dest.bucket}/{dest.key} part {number}: 200 with an error "
                                         f"body: {error.get('Code') or 'no ETag'} {error.get('Message') or ''}".strip())
                parts.append({"PartNumber": number, "ETag": etag})
            client.complete_multipart_upload(Bucket=dest.bucket, Key=dest.key, UploadId=upload_id,
                                             MultipartUpload={"Part": parts})
        except BaseException:
            try:
                client.abort_multipart_upload(Bucket=dest.bucket, Key=dest.key, UploadId=upload_id)
            except (CosServiceError, CosClientError):
                pass  # an unfinished upload holds no visible object; COS lifecycle rules reap it
            raise

    def get_bytes(self, target: OutputObject) -> bytes | None:
        """A small object of the function's own (an audit report) whole; None when there is none.
        Its body is read within COS_TIMEOUT_SECONDS, like any answer but an output's content."""
        try:
            response = self._cos(target.region).get_object(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(exc, "GET", target) from None
        stream = response["Body"].get_raw_stream()
        try:
            return bytes(stream.read())
        except Exception as exc:  # urllib3/requests raise many types for a broken or cut-off body
            stream.close()
            raise TransientError(f"GET {target.bucket}/{target.key}: the body broke off: {type(exc).__name__}") \
                from None

    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None:
        try:
            self._cos(target.region).put_object(Bucket=target.bucket, Key=target.key, Body=body,
                                                ContentType=content_type)
        except (CosServiceError, CosClientError) as exc:
            raise _translate(exc, "PUT", target) from None

    def delete(self, target: OutputObject) -> None:
        try:
            self._cos(target.region).delete_object(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            raise _translate(exc, "DELETE", target) from None


def _read_environment_once(session: requests.Session) -> None:
    """requests reads proxies, a CA bundle and ~/.netrc from the environment again for every
    request: scanning os.environ twice costs a tenth of the CPU a request takes, and a callback
    with many outputs is bound by that CPU (bench/: critical path). The environment does not
    change during a container's life: with no proxy or .netrc (whose rules depend on each URL),
    read the CA bundle here, once."""
    if urllib.request.getproxies() or _netrc_file_exists():
        return
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False


def _netrc_file_exists() -> bool:
    named = os.environ.get("NETRC")
    candidates = (named,) if named is not None else ("~/.netrc", "~/_netrc")
    return any(os.path.exists(os.path.expanduser(path)) for path in candidates)


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


_SDK_NAMES = {"content-type": "ContentType", "cache-control": "CacheControl",
              "content-disposition": "ContentDisposition", "content-encoding": "ContentEncoding",
              "expires": "Expires"}


def _state(headers: Mapping[str, str]) -> ObjectState:
    lowered = {k.lower(): v for k, v in headers.items()}
    metadata = tuple(sorted((k, v) for k, v in lowered.items() if k in _METADATA or k.startswith("x-cos-meta-")))
    return ObjectState(
        etag=lowered.get("etag", "").strip('"').lower(),
        size=int(lowered.get("content-length", 0)),
        last_modified=parsedate_to_datetime(lowered["last-modified"]),
        crc64=lowered.get("x-cos-hash-crc64ecma", ""),
        metadata=metadata,
    )


def _status(exc: Exception) -> int | None:
    return exc.get_status_code() if isinstance(exc, CosServiceError) else None


def _translate(exc: Exception, operation: str, target: OutputObject) -> Exception:
    where = f"{operation} {target.bucket}/{target.key}"
    if isinstance(exc, CosClientError):
        return TransientError(f"{where}: {exc.get_message() if hasattr(exc, 'get_message') else exc}")
    assert isinstance(exc, CosServiceError)
    status, code = exc.get_status_code(), exc.get_error_code()
    message = f"{where}: {status} {code or ''} {exc.get_error_msg() or ''}".strip()
    # A copy can answer 200 with an error body; the SDK reports it as status 200.
    if status in (200, 429) or status >= 500 or code in _RETRYABLE_CODES:
        return TransientError(message)
    if status == 404:
        return NotFound(message)
    if status == 412:
        return PreconditionFailed(message)
    return StorageError(message)
