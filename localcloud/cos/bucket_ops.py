"""Bucket operations: PUT/HEAD/DELETE Bucket, GET Bucket (ListObjects v1), location, multi-delete."""
from __future__ import annotations

from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

from . import errors
from .conditions import iso8601
from .exchange import Request, Response
from .results import int_param, key_encoder, owner, xml_result
from .store import Store, StoredObject

_MAX_DELETE_BODY = 2 * 1024 * 1024
_MAX_DELETE_KEYS = 1000


def create_bucket(store: Store, request: Request) -> Response:
    request.body.drain()
    store.create_bucket(request.bucket, request.region)
    return Response(200)


def head_bucket(store: Store, request: Request) -> Response:
    store.require_bucket(request.bucket)
    return Response(200, [("x-cos-bucket-region", store.bucket_region(request.bucket) or request.region)])


def delete_bucket(store: Store, request: Request) -> Response:
    store.delete_bucket(request.bucket)
    return Response(204)


def get_location(store: Store, request: Request) -> Response:
    store.require_bucket(request.bucket)
    return xml_result("LocationConstraint", store.bucket_region(request.bucket) or request.region)


def list_objects(store: Store, request: Request) -> Response:
    query = request.query
    prefix, marker, delimiter = query.get("prefix", ""), query.get("marker", ""), query.get("delimiter", "")
    max_keys = int_param(query, "max-keys", 1000, 0, 1000)
    contents, common_prefixes, truncated = _page(store.list_objects(request.bucket, prefix), prefix, marker,
                                                 delimiter, max_keys)
    encode = key_encoder(query)
    result: dict[str, Any] = {"Name": request.bucket}
    if "encoding-type" in query:
        result["EncodingType"] = query["encoding-type"]
    result.update({"Prefix": encode(prefix), "Marker": encode(marker), "MaxKeys": str(max_keys)})
    if delimiter:
        result["Delimiter"] = encode(delimiter)
    result["IsTruncated"] = "true" if truncated else "false"
    if truncated:
        last = max([item.key for item in contents] + common_prefixes)
        result["NextMarker"] = encode(last)
    if common_prefixes:
        result["CommonPrefixes"] = [{"Prefix": encode(common)} for common in common_prefixes]
    if contents:
        bucket_owner = owner(request.bucket)
        result["Contents"] = [
            {"Key": encode(item.key), "LastModified": iso8601(item.last_modified), "ETag": f'"{item.etag}"',
             "Size": str(item.size), "Owner": bucket_owner, "StorageClass": "STANDARD"}
            for item in contents
        ]
    return xml_result("ListBucketResult", result)


def _page(
    objects: list[StoredObject], prefix: str, marker: str, delimiter: str, max_keys: int,
) -> tuple[list[StoredObject], list[str], bool]:
    """Up to max_keys entries after marker, rolling keys that share prefix+...+delimiter into one."""
    contents: list[StoredObject] = []
    common_prefixes: list[str] = []
    for item in objects:
        if marker and item.key <= marker:
            continue
        common = _common_prefix(item.key, prefix, delimiter)
        if common is not None and (common in common_prefixes or (marker and common <= marker)):
            continue
        if len(contents) + len(common_prefixes) == max_keys:
            return contents, common_prefixes, True
        if common is None:
            contents.append(item)
        else:
            common_prefixes.append(common)
    return contents, common_prefixes, False


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    position = key.find(delimiter, len(prefix))
    return None if position < 0 else key[:position + len(delimiter)]


def delete_objects(store: Store, request: Request) -> Response:
    try:
        document = xmltodict.parse(request.body.read_all(limit=_MAX_DELETE_BODY))
        delete = document.get("Delete") or {}
        entries = delete.get("Object") or []
        if isinstance(entries, dict):
            entries = [entries]
        keys = [entry["Key"] for entry in entries]
        quiet = (delete.get("Quiet") or "false").lower() == "true"
    except (ExpatError, AttributeError, KeyError, TypeError):
        raise errors.malformed_xml() from None
    if not keys or len(keys) > _MAX_DELETE_KEYS:
        raise errors.malformed_xml(f"Delete must name 1 to {_MAX_DELETE_KEYS} objects.")
    store.require_bucket(request.bucket)
    for key in keys:
        store.delete(request.bucket, key)
    result: dict[str, Any] = {}
    if not quiet:
        result["Deleted"] = [{"Key": key} for key in keys]
    return xml_result("DeleteResult", result or None)
