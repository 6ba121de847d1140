"""COS request signatures (q-sign-algorithm=sha1), checked the way COS checks them.

The server recomputes what `qcloud_cos.cos_auth.CosS3Auth` computes from the headers and
query parameters the Authorization header lists, with the values actually received.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from . import errors

_REQUIRED_FIELDS = (
    "q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list", "q-url-param-list", "q-signature",
)


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class SignedRequest:
    """The parts of a request a signature covers."""

    method: str
    path: str  # URL-decoded, with the leading "/"
    query: list[tuple[str, str]]  # decoded (name, value) pairs as received
    headers: Mapping[str, str]  # case-insensitive lookup (http.client.HTTPMessage)
    token_header: str  # x-cos-security-token or x-ci-security-token


def _encode_header_value(text: str) -> str:
    # http.server decodes header bytes as latin-1; the SDK quoted the original (UTF-8) bytes.
    return quote(text.encode("latin-1"), safe="-_.~")


def parse_authorization(value: str) -> dict[str, str]:
    fields = {}
    for item in value.split("&"):
        name, _, field_value = item.partition("=")
        fields[name.strip()] = field_value.strip()
    return fields


def _sign_window(value: str) -> tuple[int, int]:
    start, _, end = value.partition(";")
    return int(start), int(end)


def string_to_sign(request: SignedRequest, fields: Mapping[str, str]) -> str:
    header_names = [name for name in fields["q-header-list"].split(";") if name]
    param_names = [name for name in fields["q-url-param-list"].split(";") if name]

    headers = {}
    for name in header_names:
        value = request.headers.get(unquote(name))
        if value is not None:
            headers[name] = _encode_header_value(value)
    received_params = {quote(name.encode("utf-8"), safe="-_.~").lower(): quote(value.encode("utf-8"), safe="-_.~")
                       for name, value in request.query}
    params = {name: received_params[name] for name in param_names if name in received_params}

    canonical = "{method}\n{path}\n{params}\n{headers}\n".format(
        method=request.method.lower(),
        path=request.path,
        params="&".join(f"{name}={value}" for name, value in sorted(params.items())),
        headers="&".join(f"{name}={value}" for name, value in sorted(headers.items())),
    )
    digest = hashlib.sha1(canonical.encode("utf-8")).hexdigest()
    return f"sha1\n{fields['q-sign-time']}\n{digest}\n"


def signature(secret_key: str, key_time: str, text_to_sign: str) -> str:
    sign_key = hmac.new(secret_key.encode("utf-8"), key_time.encode("utf-8"), hashlib.sha1).hexdigest()
    return hmac.new(sign_key.encode("utf-8"), text_to_sign.encode("utf-8"), hashlib.sha1).hexdigest()


def verify(request: SignedRequest, credentials: Credentials, now: float | None = None) -> None:
    """Raise the CosError COS would answer with, or return when the request is authentic."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        raise errors.CosError(403, "AccessDenied", "Access Denied.")
    fields = parse_authorization(authorization)
    missing = [name for name in _REQUIRED_FIELDS if name not in fields]
    if missing:
        raise errors.CosError(403, "AccessDenied", f"Authorization header is malformed: missing {', '.join(missing)}.")
    if fields["q-sign-algorithm"].lower() != "sha1":
        raise errors.CosError(403, "AccessDenied", "Authorization header is malformed: q-sign-algorithm must be sha1.")
    if fields["q-ak"] != credentials.secret_id:
        raise errors.CosError(403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
    try:
        start, end = _sign_window(fields["q-sign-time"])
        _sign_window(fields["q-key-time"])
    except ValueError:
        raise errors.CosError(403, "AccessDenied", "Authorization header is malformed: bad q-sign-time.") from None
    now = time.time() if now is None else now
    if not start <= now <= end:
        raise errors.CosError(403, "AccessDenied", "Request has expired")
    # COS rejects a temporary SecretId used without (or with the wrong) session token.
    if credentials.token is not None and request.headers.get(request.token_header) != credentials.token:
        raise errors.CosError(
            403, "InvalidToken", f"The {request.token_header} header is missing or does not match the SecretId.",
        )
    expected = signature(credentials.secret_key, fields["q-key-time"], string_to_sign(request, fields))
    if not hmac.compare_digest(expected, fields["q-signature"].lower()):
        raise errors.CosError(403, "SignatureDoesNotMatch", "The Signature you specified is invalid.")
