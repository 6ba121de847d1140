"""Multipart upload operations: initiate, upload part (and part copy), complete, abort, list."""
from __future__ import annotations

from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

from . import errors, tagging
from .attributes import attributes_from_headers, content_md5
from .conditions import iso8601, parse_copy_range
from .exchange import Request, Response
from .faults import Fault
from .object_ops import check_upload_length, open_copy_source
from .results import int_param, key_encoder, owner, xml_result
from .store import MAX_PART_NUMBER, Store, read_chunks

_MAX_COMPLETE_BODY = 8 * 1024 * 1024


def initiate(store: Store, request: Request) -> Response:
    tagging_header = request.header("x-cos-tagging")
    tags = tagging.parse_header(tagging_header) if tagging_header else {}
    upload_id = store.initiate_upload(request.bucket, request.key, attributes_from_headers(request.headers), tags)
    return xml_result("InitiateMultipartUploadResult", {"Bucket": request.bucket, "Key": request.key, "UploadId": upload_id})


def _part_target(request: Request) -> tuple[str, int]:
    upload_id = request.query.get("uploadId")
    if not upload_id:
        raise errors.invalid_argument("uploadId is required.")
    if "partNumber" not in request.query:
        raise errors.invalid_argument("partNumber is required.")
    return upload_id, int_param(request.query, "partNumber", 0, 1, MAX_PART_NUMBER)


def upload_part(store: Store, request: Request) -> Response:
    upload_id, number = _part_target(request)
    check_upload_length(request)
    part = store.put_part(
        request.bucket, request.key, upload_id, number, request.body.chunks(), content_md5(request.headers),
    )
    return Response(200, [("ETag", f'"{part.etag}"'), ("x-cos-hash-crc64ecma", part.crc64)])


def upload_part_copy(store: Store, request: Request, fault: Fault | None = None) -> Response:
    upload_id, number = _part_target(request)
    with open_copy_source(store, request) as (source, content):
        byte_range = parse_copy_range(request.header("x-cos-copy-source-range"), source.size)
        if fault is not None and fault.copy_error_body:
            # Like PUT Object - Copy (https://cloud.tencent.com/document/product/436/10881: an error during
            # the copy still answers 200 OK with the error as the body), no part is stored.
            return Response.xml(errors.error_body(
                "InternalError", "We encountered an internal error. Please try again.",
                request.resource, request.request_id, request.trace_id,
            ))
        start, length = (0, source.size) if byte_range is None else (byte_range[0], byte_range[1] - byte_range[0] + 1)
        part = store.put_part(request.bucket, request.key, upload_id, number, read_chunks(content, start, length))
    return xml_result("CopyPartResult", {
        "ETag": f'"{part.etag}"', "LastModified": iso8601(part.last_modified), "CRC64": part.crc64,
    })


def _requested_parts(body: bytes) -> list[tuple[int, str]]:
    try:
        document = xmltodict.parse(body)
        parts = (document.get("CompleteMultipartUpload") or {}).get("Part") or []
        if isinstance(parts, dict):
            parts = [parts]
        return [(int(part["PartNumber"]), part.get("ETag") or "") for part in parts]
    except (ExpatError, AttributeError, KeyError, TypeError, ValueError):
        raise errors.malformed_xml() from None


def complete(store: Store, request: Request) -> Response:
    upload_id = request.query["uploadId"]
    requested = _requested_parts(request.body.read_all(limit=_MAX_COMPLETE_BODY))
    stored = store.complete_upload(request.bucket, request.key, upload_id, requested)
    return xml_result("CompleteMultipartUploadResult", {
        "Location": f"{request.resource}",
        "Bucket": request.bucket,
        "Key": request.key,
        "ETag": f'"{stored.etag}"',
    }, headers=[("x-cos-hash-crc64ecma", stored.crc64)])


def abort(store: Store, request: Request) -> Response:
    store.abort_upload(request.bucket, request.key, request.query["uploadId"])
    return Response(204)


def list_parts(store: Store, request: Request) -> Response:
    upload_id = request.query["uploadId"]
    max_parts = int_param(request.query, "max-parts", 1000, 0, 1000)
    marker = int_param(request.query, "part-number-marker", 0, 0, MAX_PART_NUMBER)
    parts = [part for part in store.list_parts(request.bucket, request.key, upload_id) if part.number > marker]
    page, truncated = parts[:max_parts], len(parts) > max_parts
    encode = key_encoder(request.query)
    content: dict[str, Any] = {
        "Bucket": request.bucket,
        "Key": encode(request.key),
        "UploadId": upload_id,
        "Initiator": owner(request.bucket),
        "Owner": owner(request.bucket),
        "StorageClass": "STANDARD",
        "PartNumberMarker": str(marker),
        "MaxParts": str(max_parts),
        "IsTruncated": "true" if truncated else "false",
    }
    if "encoding-type" in request.query:
        content["EncodingType"] = request.query["encoding-type"]
    if page:
        content["NextPartNumberMarker"] = str(page[-1].number)
        content["Part"] = [
            {"PartNumber": str(part.number), "LastModified": iso8601(part.last_modified),
             "ETag": f'"{part.etag}"', "Size": str(part.size)}
            for part in page
        ]
    return xml_result("ListPartsResult", content)


def list_uploads(store: Store, request: Request) -> Response:
    query = request.query
    prefix = query.get("prefix", "")
    key_marker, upload_id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    max_uploads = int_param(query, "max-uploads", 1000, 0, 1000)
    uploads = [
        upload for upload in store.list_uploads(request.bucket, prefix)
        if not key_marker or upload.key > key_marker
        or (upload.key == key_marker and upload_id_marker and upload.upload_id > upload_id_marker)
    ]
    page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
    encode = key_encoder(query)
    content: dict[str, Any] = {
        "Bucket": request.bucket,
        "Prefix": encode(prefix),
        "KeyMarker": encode(key_marker),
        "UploadIdMarker": upload_id_marker,
        "MaxUploads": str(max_uploads),
        "IsTruncated": "true" if truncated else "false",
    }
    if "encoding-type" in query:
        content["EncodingType"] = query["encoding-type"]
    if truncated:
        content["NextKeyMarker"] = encode(page[-1].key)
        content["NextUploadIdMarker"] = page[-1].upload_id
    if page:
        content["Upload"] = [
            {"Key": encode(upload.key), "UploadId": upload.upload_id, "StorageClass": "STANDARD",
             "Initiator": owner(request.bucket), "Owner": owner(request.bucket),
             "Initiated": iso8601(upload.initiated)}
            for upload in page
        ]
    return xml_result("ListMultipartUploadsResult", content)
