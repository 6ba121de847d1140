"""Object attributes carried in headers: Content-Type, x-cos-meta-*, stored standard headers,
Content-MD5 and x-cos-copy-source."""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import unquote

from . import errors
from .conditions import http_date
from .hosts import parse_host
from .store import ObjectAttributes, StoredObject

DEFAULT_CONTENT_TYPE = "application/octet-stream"
META_PREFIX = "x-cos-meta-"
STORED_HEADERS = {
    "cache-control": "Cache-Control",
    "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding",
    "content-language": "Content-Language",
    "expires": "Expires",
}


def decode_header_value(raw: str) -> str:
    """http.server decodes header bytes as latin-1; clients send UTF-8."""
    data = raw.encode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def encode_header_value(text: str) -> str:
    """The inverse of decode_header_value, for http.server's latin-1 header encoding."""
    return text.encode("utf-8").decode("latin-1")


def normalise_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """`{"x-cos-meta-a": "1"}` or `{"a": "1"}` -> `{"x-cos-meta-a": "1"}`."""
    normalised = {}
    for name, value in (metadata or {}).items():
        name = name.lower()
        normalised[name if name.startswith(META_PREFIX) else META_PREFIX + name] = str(value)
    return normalised


def attributes_from_headers(headers: Mapping[str, str]) -> ObjectAttributes:
    metadata, stored = {}, {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(META_PREFIX):
            metadata[lower] = decode_header_value(value)
        elif lower in STORED_HEADERS:
            stored[lower] = decode_header_value(value)
    content_type = headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
    return ObjectAttributes(content_type=content_type, metadata=metadata, headers=stored)


def object_headers(stored: StoredObject) -> list[tuple[str, str]]:
    """The headers GET and HEAD Object answer with (no tag count: COS documents none)."""
    attributes = stored.attributes
    headers = [
        ("Content-Type", attributes.content_type),
        ("ETag", f'"{stored.etag}"'),
        ("Last-Modified", http_date(stored.last_modified)),
        ("Accept-Ranges", "bytes"),
        ("x-cos-hash-crc64ecma", stored.crc64),
    ]
    headers += [(STORED_HEADERS[name], encode_header_value(value)) for name, value in attributes.headers.items()]
    headers += [(name, encode_header_value(value)) for name, value in attributes.metadata.items()]
    return headers


def content_md5(headers: Mapping[str, str]) -> bytes | None:
    value = headers.get("Content-MD5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise errors.CosError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
    return digest


def parse_copy_source(value: str) -> tuple[str, str | None, str]:
    """`<bucket>.cos.<region>.myqcloud.com/<url-encoded key>[?versionId=..]` -> (bucket, region, key).

    The region is None when the host is not a COS name (custom endpoints): then only the bucket counts.
    """
    text = value.strip()
    for scheme in ("http://", "https://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    host, _, path = text.partition("/")
    path = path.split("?", 1)[0]
    if not host or not path:
        raise errors.invalid_argument(
            "x-cos-copy-source must look like <bucket>.cos.<region>.myqcloud.com/<key>.",
        )
    virtual_host = parse_host(host)
    if virtual_host is not None:
        return virtual_host.bucket, virtual_host.region, unquote(path)
    return host.split(".", 1)[0].lower(), None, unquote(path)
