"""Routes a COS XML API request (already authenticated) to its operation."""
from __future__ import annotations

from . import bucket_ops, errors, file_jobs, multipart_ops, object_ops
from .exchange import Request, Response
from .faults import Fault
from .store import Store

# Sub-resources COS has and the emulator does not: refusing them beats treating, say,
# `PUT ?acl` as an upload that overwrites the object with an ACL document.
UNSUPPORTED_SUBRESOURCES = frozenset({
    "acl", "cors", "lifecycle", "policy", "versioning", "versions", "versionId", "restore", "select",
    "select-type", "append", "position", "symlink", "website", "logging", "inventory", "replication",
    "domain", "referer", "encryption", "origin", "object-lock", "intelligenttiering", "torrent",
    "ci-process", "rename", "retention", "accelerate", "notification", "list-type",
})


class CosApi:
    def __init__(self, store: Store):
        self._store = store

    def handle(self, request: Request, fault: Fault | None) -> Response:
        if request.method == "GET" and request.key and request.query.get("ci-process") == "filehash":
            self._require_bucket_in_region(request)
            return file_jobs.sync_file_hash(self._store, request)  # CI's synchronous hash, on the cos host
        unsupported = sorted(UNSUPPORTED_SUBRESOURCES.intersection(request.query))
        if unsupported:
            raise errors.not_implemented(f"{request.method} ?{unsupported[0]}")
        if not (request.method == "PUT" and not request.key):
            self._require_bucket_in_region(request)
        if not request.key:
            return self._bucket_operation(request)
        return self._object_operation(request, fault)

    def _require_bucket_in_region(self, request: Request) -> None:
        # A bucket answers only on its own region's host, as COS does.
        if self._store.bucket_region(request.bucket) != request.region:
            raise errors.no_such_bucket()

    def _bucket_operation(self, request: Request) -> Response:
        store, method, query = self._store, request.method, request.query
        if "tagging" in query:
            raise errors.not_implemented("bucket tagging")
        if method == "PUT":
            return bucket_ops.create_bucket(store, request)
        if method == "HEAD":
            return bucket_ops.head_bucket(store, request)
        if method == "DELETE":
            return bucket_ops.delete_bucket(store, request)
        if method == "GET":
            if "uploads" in query:
                return multipart_ops.list_uploads(store, request)
            if "location" in query:
                return bucket_ops.get_location(store, request)
            return bucket_ops.list_objects(store, request)
        if method == "POST" and "delete" in query:
            return bucket_ops.delete_objects(store, request)
        raise errors.not_implemented(f"{method} on a bucket")

    def _object_operation(self, request: Request, fault: Fault | None) -> Response:
        store, method, query = self._store, request.method, request.query
        copies = request.header("x-cos-copy-source") is not None
        if method == "PUT":
            if "tagging" in query:
                return object_ops.put_tagging(store, request)
            if "uploadId" in query or "partNumber" in query:
                if copies:
                    return multipart_ops.upload_part_copy(store, request, fault)
                return multipart_ops.upload_part(store, request)
            if copies:
                return object_ops.copy_object(store, request, fault)
            return object_ops.put_object(store, request)
        if method == "GET":
            if "tagging" in query:
                return object_ops.get_tagging(store, request)
            if "uploadId" in query:
                return multipart_ops.list_parts(store, request)
            return object_ops.get_object(store, request)
        if method == "HEAD":
            return object_ops.head_object(store, request)
        if method == "DELETE":
            if "tagging" in query:
                return object_ops.delete_tagging(store, request)
            if "uploadId" in query:
                return multipart_ops.abort(store, request)
            return object_ops.delete_object(store, request)
        if method == "POST":
            if "uploads" in query:
                return multipart_ops.initiate(store, request)
            if "uploadId" in query:
                return multipart_ops.complete(store, request)
        raise errors.not_implemented(f"{method} on an object with {sorted(query) or 'no'} parameters")
