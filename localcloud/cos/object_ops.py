"""Object operations: PUT/GET/HEAD/DELETE Object, PUT Object - Copy and object tagging."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import xmltodict

from . import errors, tagging
from .attributes import attributes_from_headers, content_md5, object_headers, parse_copy_source
from .conditions import (
    check_copy_source_preconditions,
    check_read_preconditions,
    http_date,
    iso8601,
    parse_read_range,
)
from .exchange import Request, Response
from .faults import Fault
from .store import Store, StoredObject

MAX_SINGLE_UPLOAD = 5 * 1024 * 1024 * 1024

# Query parameters that override response headers on GET Object.
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def check_upload_length(request: Request) -> None:
    """PUT Object and Upload Part bodies: a declared length (or chunked) and at most 5 GB."""
    if not request.body.has_length:
        raise errors.CosError(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
    if (request.body.declared_length or 0) > MAX_SINGLE_UPLOAD:
        raise errors.CosError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")


def put_object(store: Store, request: Request) -> Response:
    check_upload_length(request)
    tagging_header = request.header("x-cos-tagging")
    tags = tagging.parse_header(tagging_header) if tagging_header else {}
    stored = store.put(
        request.bucket, request.key, request.body.chunks(), attributes_from_headers(request.headers),
        tags=tags, expected_md5=content_md5(request.headers),
    )
    return Response(200, [("ETag", f'"{stored.etag}"'), ("x-cos-hash-crc64ecma", stored.crc64)])


def head_object(store: Store, request: Request) -> Response:
    stored = store.head(request.bucket, request.key)
    if not check_read_preconditions(request.headers, stored.etag, stored.last_modified):
        return _not_modified(stored)
    return Response(200, [*object_headers(stored), ("Content-Length", str(stored.size))])


def get_object(store: Store, request: Request) -> Response:
    stored, content = store.open(request.bucket, request.key)
    try:
        if not check_read_preconditions(request.headers, stored.etag, stored.last_modified):
            content.close()
            return _not_modified(stored)
        headers = _with_overrides(object_headers(stored), request)
        byte_range = parse_read_range(request.header("Range"), stored.size)
    except BaseException:
        content.close()
        raise
    if byte_range is None:
        return Response(200, headers, stream=content, stream_length=stored.size)
    start, end = byte_range
    headers.append(("Content-Range", f"bytes {start}-{end}/{stored.size}"))
    return Response(206, headers, stream=content, stream_offset=start, stream_length=end - start + 1)


def _not_modified(stored: StoredObject) -> Response:
    # HTTP allows a 304 to state the size a 200 would have had; the SDK's StreamBody needs Content-Length.
    return Response(304, [
        ("ETag", f'"{stored.etag}"'), ("Last-Modified", http_date(stored.last_modified)),
        ("Content-Length", str(stored.size)),
    ])


def _with_overrides(headers: list[tuple[str, str]], request: Request) -> list[tuple[str, str]]:
    overrides = {
        header: request.query[param] for param, header in _RESPONSE_OVERRIDES.items() if param in request.query
    }
    kept = [(name, value) for name, value in headers if name not in overrides]
    return kept + list(overrides.items())


def delete_object(store: Store, request: Request) -> Response:
    store.delete(request.bucket, request.key)
    return Response(204)


def copy_object(store: Store, request: Request, fault: Fault | None) -> Response:
    directive = request.header("x-cos-metadata-directive") or "Copy"
    if directive not in ("Copy", "Replaced"):
        raise errors.invalid_argument("x-cos-metadata-directive must be Copy or Replaced.")
    # PUT Object - Copy (https://cloud.tencent.com/document/product/436/10881): x-cos-tagging-directive
    # Copy (the default) gives the copy the source's tags, Replaced the request's x-cos-tagging.
    tagging_directive = request.header("x-cos-tagging-directive") or "Copy"
    if tagging_directive not in ("Copy", "Replaced"):
        raise errors.invalid_argument("x-cos-tagging-directive must be Copy or Replaced.")
    tagging_header = request.header("x-cos-tagging")
    replaced_tags = tagging.parse_header(tagging_header) if tagging_header else {}
    with open_copy_source(store, request) as (source, content):
        if fault is not None and fault.copy_error_body:
            # COS can accept a copy, answer 200, then fail: the error comes in the body.
            return Response.xml(errors.error_body(
                "InternalError", "We encountered an internal error. Please try again.",
                request.resource, request.request_id, request.trace_id,
            ))
        attributes = source.attributes if directive == "Copy" else attributes_from_headers(request.headers)
        tags = dict(source.tags) if tagging_directive == "Copy" else replaced_tags
        stored = store.copy_from(source, content, request.bucket, request.key, attributes, tags)
    body = xmltodict.unparse({"CopyObjectResult": {
        "ETag": f'"{stored.etag}"', "CRC64": stored.crc64, "LastModified": iso8601(stored.last_modified),
    }}).encode("utf-8")
    return Response.xml(body, headers=[("x-cos-hash-crc64ecma", stored.crc64)])


@contextmanager
def open_copy_source(store: Store, request: Request) -> Iterator[tuple[StoredObject, BinaryIO]]:
    """The object x-cos-copy-source names, open, once the x-cos-copy-source-If-* conditions hold."""
    bucket, region, key = parse_copy_source(request.header("x-cos-copy-source") or "")
    actual_region = store.bucket_region(bucket)
    if actual_region is None or (region is not None and region != actual_region):
        raise errors.no_such_bucket()
    source, content = store.open(bucket, key)
    with content:
        check_copy_source_preconditions(request.headers, source.etag, source.last_modified)
        yield source, content


def put_tagging(store: Store, request: Request) -> Response:
    tags = tagging.parse_xml(request.body.read_all(limit=64 * 1024))
    store.set_tags(request.bucket, request.key, tags)
    return Response(200)


def get_tagging(store: Store, request: Request) -> Response:
    return Response.xml(tagging.to_xml(store.tags(request.bucket, request.key)))


def delete_tagging(store: Store, request: Request) -> Response:
    store.set_tags(request.bucket, request.key, {})
    return Response(204)

