"""A small storage adapter over the COS client (handlers/storage/clients.py builds it).

The adapter speaks the function's language (ObjectState, tags as a dict, bytes) and turns SDK failures
into two kinds: `TransientError` (try again) and `StorageError` (give up). Reading an object's content
for its hash is checking/reads.py's.
"""
from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers.config import Settings
from handlers.deadline import Deadline
from handlers.errors import NotFound, PreconditionFailed, StorageError, TransientError
from handlers.intake.models import ObjectState, OutputObject
from handlers.storage.clients import Clients

# Headers that are the object's metadata: a multipart copy must set them again itself.
_METADATA = ("content-type", "cache-control", "content-disposition", "content-encoding", "expires")
_RETRYABLE_CODES = {"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable"}


class ObjectStore:
    """What verification and actions need from COS, nothing more."""

    def __init__(self, clients: Clients, settings: Settings, deadline: Deadline | None = None):
        self._clients = clients
        self._settings = settings
        self._deadline = deadline

    def bound(self, deadline: Deadline) -> ObjectStore:
        """The same store, with every request's timeout capped by the time the invocation has left."""
        return ObjectStore(self._clients, self._settings, deadline)

    def _cos(self, region: str) -> CosS3Client:
        return self._clients.cos(region, self._deadline)

    def head(self, target: OutputObject) -> ObjectState | None:
        try:
            headers = self._cos(target.region).head_object(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if status_of(exc) == 404:
                return None  # no such key, or no such bucket: COS cannot tell them apart on HEAD
            raise translate(exc, "HEAD", target) from None
        return _state(headers)

    def tags(self, target: OutputObject) -> dict[str, str] | None:
        """The object's tags, or None when the object does not exist."""
        try:
            data = self._cos(target.region).get_object_tagging(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if status_of(exc) == 404:
                return None
            raise translate(exc, "GET tagging", target) from None
        tag_set = (data or {}).get("TagSet") or {}
        return {str(t.get("Key")): str(t.get("Value") or "") for t in tag_set.get("Tag") or []}

    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None:
        body = {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}}
        try:
            self._cos(target.region).put_object_tagging(Bucket=target.bucket, Key=target.key, Tagging=body)
        except (CosServiceError, CosClientError) as exc:
            raise translate(exc, "PUT tagging", target) from None

    def delete_tags(self, target: OutputObject) -> None:
        """Remove every tag (a PUT of an empty set is not how COS clears them)."""
        try:
            self._cos(target.region).delete_object_tagging(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if status_of(exc) == 404:
                return
            raise translate(exc, "DELETE tagging", target) from None

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
            raise translate(exc, "COPY", dest) from None

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
            if status_of(exc) == 404:
                return None
            raise translate(exc, "GET", target) from None
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
            raise translate(exc, "PUT", target) from None

    def delete(self, target: OutputObject) -> None:
        try:
            self._cos(target.region).delete_object(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            raise translate(exc, "DELETE", target) from None


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


def status_of(exc: Exception) -> int | None:
    return exc.get_status_code() if isinstance(exc, CosServiceError) else None


def translate(exc: Exception, operation: str, target: OutputObject) -> Exception:
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
