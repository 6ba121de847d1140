"""The one place that builds COS/CI clients, and a small storage adapter over them.

The adapter speaks the function's language (ObjectState, tags as a dict, an MD5) and turns
SDK failures into two kinds: `TransientError` (try again) and `StorageError` (give up).
"""
from __future__ import annotations

import hashlib
import logging
import threading
from email.utils import parsedate_to_datetime
from typing import Iterator, Mapping

import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers.config import Settings
from handlers.errors import StorageError, TransientError
from handlers.models import ObjectState, OutputObject

CHUNK_BYTES = 1 << 20
_RETRYABLE_CODES = {"RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable"}

# At DEBUG the SDK logs request headers, security token included; its failures reach our
# own logs through StorageError anyway.
logging.getLogger("qcloud_cos").setLevel(logging.ERROR)


class Clients:
    """COS and CI clients per region, sharing one connection pool sized for our concurrency."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._session = requests.Session()
        pool = settings.concurrency * 2 + 4  # object checks and tag reads run side by side
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=pool)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._clients: dict[tuple[str, str], CosS3Client] = {}
        self._lock = threading.Lock()

    def cos(self, region: str) -> CosS3Client:
        return self._client("cos", region)

    def ci(self, region: str) -> CosS3Client:
        return self._client("ci", region)

    def _client(self, service: str, region: str) -> CosS3Client:
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = CosS3Client(self._config(service, region), retry=0, session=self._session)
                self._clients[(service, region)] = client
            return client

    def _config(self, service: str, region: str) -> CosConfig:
        s = self._settings
        options = dict(Region=region, SecretId=s.secret_id, SecretKey=s.secret_key, Token=s.token,
                       Timeout=s.cos_timeout, Scheme="https")
        if service == "ci":
            # With IP/Port set the SDK builds Host from Endpoint; name the CI service there.
            options["Endpoint"] = f"ci.{region}.myqcloud.com"
        if s.cos_endpoint is not None:
            options.update(Scheme=s.cos_endpoint.scheme, IP=s.cos_endpoint.host, Port=s.cos_endpoint.port)
        return CosConfig(**options)


class ObjectStore:
    """What verification and actions need from COS, nothing more."""

    def __init__(self, clients: Clients):
        self._clients = clients

    def head(self, target: OutputObject) -> ObjectState | None:
        try:
            headers = self._clients.cos(target.region).head_object(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) == 404:
                return None  # no such key, or no such bucket: COS cannot tell them apart on HEAD
            raise _translate(exc, "HEAD", target) from None
        return _state(headers)

    def content_md5(self, target: OutputObject, etag: str) -> str:
        """Stream the object through MD5; If-Match pins the version the HEAD saw."""
        try:
            response = self._clients.cos(target.region).get_object(
                Bucket=target.bucket, Key=target.key, IfMatch=f'"{etag}"')
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) in (404, 412):
                raise TransientError(f"GET {target.key}: the object changed since it was read") from None
            raise _translate(exc, "GET", target) from None
        expected = int(response.get("Content-Length", -1))
        digest = hashlib.md5()
        received = 0
        try:
            for chunk in _chunks(response["Body"].get_raw_stream()):
                digest.update(chunk)
                received += len(chunk)
        except Exception as exc:  # urllib3/requests raise many types for a broken stream
            raise TransientError(f"GET {target.key}: the body stream failed after {received} bytes: {exc}") from None
        if expected >= 0 and received != expected:
            raise TransientError(f"GET {target.key}: got {received} of {expected} bytes")
        return digest.hexdigest()

    def tags(self, target: OutputObject) -> dict[str, str] | None:
        """The object's tags, or None when the object does not exist."""
        try:
            data = self._clients.cos(target.region).get_object_tagging(Bucket=target.bucket, Key=target.key)
        except (CosServiceError, CosClientError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(exc, "GET tagging", target) from None
        tag_set = (data or {}).get("TagSet") or {}
        return {str(t.get("Key")): str(t.get("Value") or "") for t in tag_set.get("Tag") or []}

    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None:
        body = {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}}
        try:
            self._clients.cos(target.region).put_object_tagging(Bucket=target.bucket, Key=target.key, Tagging=body)
        except (CosServiceError, CosClientError) as exc:
            raise _translate(exc, "PUT tagging", target) from None


def _chunks(stream) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK_BYTES, decode_content=False)
        if not chunk:
            return
        yield chunk


def _state(headers: Mapping[str, str]) -> ObjectState:
    return ObjectState(
        etag=headers.get("ETag", "").strip('"').lower(),
        size=int(headers.get("Content-Length", 0)),
        last_modified=parsedate_to_datetime(headers["Last-Modified"]),
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
    return StorageError(message)
