"""File-backed COS state: buckets, objects, tags and multipart uploads.

One file per object under `root/objects` (named by a hash of bucket and key); everything
else lives in memory behind one lock. Content is always written to a temporary file first
and moved into place with `os.replace`, so a concurrent reader sees either the old or the
new object, never a partial one (a reader that already opened the old file keeps it).
File I/O happens outside the lock; only the bookkeeping and the final rename happen inside.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import errors
from .digest import ContentDigest, multipart_etag

CHUNK_SIZE = 1024 * 1024
MIN_PART_SIZE = 1024 * 1024
MAX_PART_NUMBER = 10000


@dataclass(frozen=True)
class ObjectAttributes:
    """What describes an object besides its bytes (copied or replaced by a copy)."""

    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)  # lower-cased "x-cos-meta-*" names
    headers: dict[str, str] = field(default_factory=dict)  # stored standard headers, e.g. cache-control


@dataclass
class StoredObject:
    bucket: str
    key: str
    etag: str  # without quotes
    size: int
    last_modified: float
    attributes: ObjectAttributes
    crc64: str
    md5: str  # hex MD5 of the content, whatever the ETag is
    path: str
    tags: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> StoredObject:
        return dataclasses.replace(self, tags=dict(self.tags))


@dataclass
class Part:
    number: int
    etag: str  # hex MD5 of the part, without quotes
    md5_digest: bytes
    crc64: str
    size: int
    path: str
    last_modified: float


@dataclass
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    attributes: ObjectAttributes
    tags: dict[str, str]
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass
class Bucket:
    name: str
    region: str
    created: float
    objects: dict[str, StoredObject] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)


@dataclass
class Spooled:
    """A temporary file holding uploaded content, with the checksums taken while writing it."""

    path: str
    size: int
    md5_hex: str
    md5_digest: bytes
    crc64: str
    part_md5_digests: list[bytes]


def read_chunks(fh: BinaryIO, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    fh.seek(start)
    remaining = length
    while remaining is None or remaining > 0:
        chunk = fh.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def _remove_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _new_upload_id() -> str:
    return f"{int(time.time())}{uuid.uuid4().hex}"


class Store:
    def __init__(self, root: Path):
        self._objects_dir = root / "objects"
        self._parts_dir = root / "parts"
        self._tmp_dir = root / "tmp"
        for directory in (self._objects_dir, self._parts_dir, self._tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._buckets: dict[str, Bucket] = {}

    # ----------------------------------------------------------------- buckets

    def create_bucket(self, name: str, region: str) -> None:
        with self._lock:
            if name in self._buckets:
                raise errors.CosError(409, "BucketAlreadyExists", "The requested bucket name is not available.")
            self._buckets[name] = Bucket(name=name, region=region, created=time.time())

    def bucket_region(self, name: str) -> str | None:
        with self._lock:
            bucket = self._buckets.get(name)
            return bucket.region if bucket else None

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            bucket = self._bucket(name)
            if bucket.objects:
                raise errors.CosError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
            for upload in bucket.uploads.values():
                shutil.rmtree(self._upload_dir(upload.upload_id), ignore_errors=True)
            del self._buckets[name]

    def require_bucket(self, name: str) -> None:
        with self._lock:
            self._bucket(name)

    def _bucket(self, name: str) -> Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise errors.no_such_bucket()
        return bucket

    # ----------------------------------------------------------------- objects

    def spool(self, chunks: Iterable[bytes], part_size: int | None = None) -> Spooled:
        """Write chunks to a temporary file; with part_size, also take the MD5 of every part."""
        whole = ContentDigest()
        part_digests: list[bytes] = []
        part = hashlib.md5()
        part_filled = 0
        fd, path = tempfile.mkstemp(dir=self._tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    whole.update(chunk)
                    while part_size and chunk:
                        take = min(part_size - part_filled, len(chunk))
                        part.update(chunk[:take])
                        part_filled += take
                        chunk = chunk[take:]
                        if part_filled == part_size:
                            part_digests.append(part.digest())
                            part, part_filled = hashlib.md5(), 0
            if part_size and (part_filled or not part_digests):
                part_digests.append(part.digest())
        except BaseException:
            _remove_quietly(path)
            raise
        return Spooled(path, whole.size, whole.md5_hex, whole.md5_digest, whole.crc64, part_digests)

    def put(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        attributes: ObjectAttributes,
        *,
        tags: dict[str, str] | None = None,
        expected_md5: bytes | None = None,
        part_size: int | None = None,
        last_modified: float | None = None,
    ) -> StoredObject:
        self.require_bucket(bucket)
        spooled = self.spool(chunks, part_size)
        if expected_md5 is not None and expected_md5 != spooled.md5_digest:
            _remove_quietly(spooled.path)
            raise errors.CosError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
        etag = multipart_etag(spooled.part_md5_digests) if part_size else spooled.md5_hex
        return self._commit(
            bucket, key, spooled.path,
            etag=etag, size=spooled.size, md5=spooled.md5_hex, crc64=spooled.crc64,
            attributes=attributes, tags=tags or {}, last_modified=last_modified,
        )

    def _commit(
        self, bucket: str, key: str, tmp_path: str, *, etag: str, size: int, md5: str, crc64: str,
        attributes: ObjectAttributes, tags: dict[str, str], last_modified: float | None,
        upload_id: str | None = None,
    ) -> StoredObject:
        try:
            with self._lock:
                target = self._bucket(bucket)
                if upload_id is not None and upload_id not in target.uploads:
                    raise errors.no_such_upload()
                path = self._object_path(bucket, key)
                os.replace(tmp_path, path)
                stored = StoredObject(
                    bucket=bucket, key=key, etag=etag, size=size,
                    last_modified=time.time() if last_modified is None else last_modified,
                    attributes=attributes, crc64=crc64, md5=md5, path=str(path), tags=dict(tags),
                )
                target.objects[key] = stored
                if upload_id is not None:
                    self._discard_upload(target, upload_id)
                return stored.snapshot()
        except BaseException:
            _remove_quietly(tmp_path)
            raise

    def head(self, bucket: str, key: str) -> StoredObject:
        with self._lock:
            return self._object(bucket, key).snapshot()

    def find(self, bucket: str, key: str) -> StoredObject | None:
        with self._lock:
            target = self._buckets.get(bucket)
            stored = target.objects.get(key) if target else None
            return stored.snapshot() if stored else None

    def open(self, bucket: str, key: str) -> tuple[StoredObject, BinaryIO]:
        """The object's description and an open handle on exactly those bytes."""
        with self._lock:
            stored = self._object(bucket, key)
            return stored.snapshot(), open(stored.path, "rb")

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            stored = self._bucket(bucket).objects.pop(key, None)
            if stored is not None:
                _remove_quietly(stored.path)

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        with self._lock:
            objects = self._bucket(bucket).objects
            return [objects[key].snapshot() for key in sorted(objects) if key.startswith(prefix)]

    def copy_from(
        self, source: StoredObject, source_file: BinaryIO, bucket: str, key: str, attributes: ObjectAttributes,
        tags: dict[str, str] | None = None,
    ) -> StoredObject:
        """Copy an opened object's bytes to bucket/key. The copy is a plain object: its ETag is
        the content MD5 even when the source was multipart; it gets `tags` (none by default)."""
        self.require_bucket(bucket)
        fd, tmp_path = tempfile.mkstemp(dir=self._tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy_file_range(source_file, out, 0, source.size)
        except BaseException:
            _remove_quietly(tmp_path)
            raise
        return self._commit(
            bucket, key, tmp_path, etag=source.md5, size=source.size, md5=source.md5, crc64=source.crc64,
            attributes=attributes, tags=dict(tags or {}), last_modified=None,
        )

    def _object(self, bucket: str, key: str) -> StoredObject:
        stored = self._bucket(bucket).objects.get(key)
        if stored is None:
            raise errors.no_such_key()
        return stored

    def _object_path(self, bucket: str, key: str) -> Path:
        name = hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()
        return self._objects_dir / name

    # -------------------------------------------------------------------- tags

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        with self._lock:
            return dict(self._object(bucket, key).tags)

    def set_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        with self._lock:
            self._object(bucket, key).tags = dict(tags)

    # --------------------------------------------------------------- multipart

    def initiate_upload(self, bucket: str, key: str, attributes: ObjectAttributes, tags: dict[str, str]) -> str:
        upload_id = _new_upload_id()
        with self._lock:
            self._bucket(bucket).uploads[upload_id] = Upload(
                upload_id=upload_id, bucket=bucket, key=key, initiated=time.time(),
                attributes=attributes, tags=dict(tags),
            )
        self._upload_dir(upload_id).mkdir()
        return upload_id

    def put_part(
        self, bucket: str, key: str, upload_id: str, number: int, chunks: Iterable[bytes],
        expected_md5: bytes | None = None,
    ) -> Part:
        with self._lock:
            self._upload(bucket, key, upload_id)
        spooled = self.spool(chunks)
        if expected_md5 is not None and expected_md5 != spooled.md5_digest:
            _remove_quietly(spooled.path)
            raise errors.CosError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
        try:
            with self._lock:
                upload = self._upload(bucket, key, upload_id)
                path = self._upload_dir(upload_id) / str(number)
                os.replace(spooled.path, path)
                part = Part(number, spooled.md5_hex, spooled.md5_digest, spooled.crc64, spooled.size, str(path), time.time())
                upload.parts[number] = part
                return dataclasses.replace(part)
        except BaseException:
            _remove_quietly(spooled.path)
            raise

    def complete_upload(self, bucket: str, key: str, upload_id: str, requested: list[tuple[int, str]]) -> StoredObject:
        """Assemble the listed parts (number, ETag) into the object; validates like COS does."""
        if not requested:
            raise errors.malformed_xml("The XML you provided was not well-formed or did not validate: no Part.")
        numbers = [number for number, _ in requested]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise errors.CosError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        with self._lock:
            upload = self._upload(bucket, key, upload_id)
            parts: list[Part] = []
            for number, etag in requested:
                part = upload.parts.get(number)
                if part is None or part.etag != etag.strip().strip('"'):
                    raise errors.CosError(400, "InvalidPart", f"Part {number} could not be found or its ETag differs.")
                parts.append(part)
            for part in parts[:-1]:
                if part.size < MIN_PART_SIZE:
                    raise errors.CosError(
                        400, "EntityTooSmall",
                        f"Part {part.number} is {part.size} bytes; every part but the last must be at least 1 MiB.",
                    )
            handles = [open(part.path, "rb") for part in parts]  # noqa: SIM115 - closed below, after the spool
            attributes, tags = upload.attributes, dict(upload.tags)
        try:
            spooled = self.spool(chunk for handle in handles for chunk in read_chunks(handle))
        finally:
            for handle in handles:
                handle.close()
        return self._commit(
            bucket, key, spooled.path,
            etag=multipart_etag([part.md5_digest for part in parts]), size=spooled.size,
            md5=spooled.md5_hex, crc64=spooled.crc64, attributes=attributes, tags=tags,
            last_modified=None, upload_id=upload_id,
        )

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            self._upload(bucket, key, upload_id)
            self._discard_upload(self._bucket(bucket), upload_id)

    def list_uploads(self, bucket: str, prefix: str = "") -> list[Upload]:
        with self._lock:
            uploads = [
                dataclasses.replace(upload, parts=dict(upload.parts))
                for upload in self._bucket(bucket).uploads.values()
                if upload.key.startswith(prefix)
            ]
        return sorted(uploads, key=lambda upload: (upload.key, upload.initiated, upload.upload_id))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[Part]:
        with self._lock:
            upload = self._upload(bucket, key, upload_id)
            return [dataclasses.replace(upload.parts[number]) for number in sorted(upload.parts)]

    def _upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        upload = self._bucket(bucket).uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise errors.no_such_upload()
        return upload

    def _discard_upload(self, bucket: Bucket, upload_id: str) -> None:
        bucket.uploads.pop(upload_id, None)
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def _upload_dir(self, upload_id: str) -> Path:
        return self._parts_dir / upload_id


def _copy_file_range(source: BinaryIO, target: BinaryIO, start: int, length: int) -> None:
    """Copy bytes between files in the kernel when it can, in chunks through Python otherwise."""
    target.flush()
    offset, remaining = start, length
    try:
        while remaining > 0:
            sent = os.sendfile(target.fileno(), source.fileno(), offset, min(remaining, 64 * CHUNK_SIZE))
            if sent == 0:
                break
            offset += sent
            remaining -= sent
        return
    except OSError:
        pass
    for chunk in read_chunks(source, offset, remaining):
        target.write(chunk)
