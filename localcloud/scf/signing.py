"""TC3-HMAC-SHA256, the signature of TencentCloud API 3.0, checked as the service checks it.

The canonical request follows Tencent's signing documentation: header names and values are
lower-cased and trimmed, and the payload hash covers the raw body (or the literal
`UNSIGNED-PAYLOAD` when `X-TC-Content-SHA256` says so).
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import ApiError, missing_parameter

ALGORITHM = "TC3-HMAC-SHA256"
MAX_CLOCK_SKEW = 300  # seconds, in either direction
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
REQUIRED_SIGNED_HEADERS = ("content-type", "host")


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # case-insensitive look-ups (http.client.HTTPMessage)
    body: bytes


def _invalid_authorization(detail: str) -> ApiError:
    return ApiError("AuthFailure.InvalidAuthorization", f"Authorization header is invalid: {detail}.")


def parse_authorization(value: str | None) -> Authorization:
    if not value:
        raise _invalid_authorization("it is missing")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _invalid_authorization(f"algorithm `{algorithm}` is not {ALGORITHM}")
    fields = {}
    for part in rest.split(","):
        key, sep, field = part.strip().partition("=")
        if not sep:
            raise _invalid_authorization(f"`{part.strip()}` is not key=value")
        fields[key] = field
    try:
        credential, signed_headers, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as missing:
        raise _invalid_authorization(f"{missing.args[0]} is missing") from None
    scope = credential.split("/")
    if len(scope) != 4 or scope[3] != "tc3_request" or not all(scope):
        raise _invalid_authorization("Credential is not <SecretId>/<date>/<service>/tc3_request")
    return Authorization(scope[0], scope[1], scope[2], tuple(signed_headers.split(";")), signature)


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    k_date = _hmac(("TC3" + secret_key).encode(), date)
    k_service = _hmac(k_date, service)
    return _hmac(k_service, "tc3_request")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def canonical_request(request: SignedRequest, signed_headers: tuple[str, ...]) -> str:
    headers = ""
    for name in signed_headers:
        value = request.headers.get(name)
        if value is None:
            raise _invalid_authorization(f"signed header `{name}` is not in the request")
        headers += f"{name.lower()}:{value.strip().lower()}\n"
    if request.headers.get("X-TC-Content-SHA256") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD.encode()
    else:
        payload = request.body
    return "\n".join([
        request.method, request.path, request.query, headers, ";".join(signed_headers),
        hashlib.sha256(payload).hexdigest(),
    ])


def string_to_sign(timestamp: str, date: str, service: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def request_timestamp(request: SignedRequest) -> int:
    raw = request.headers.get("X-TC-Timestamp")
    if raw is None:
        raise missing_parameter("Timestamp")
    if not raw.strip().isdigit():
        raise ApiError("InvalidParameterValue", f"X-TC-Timestamp `{raw}` is not a Unix time in seconds.")
    return int(raw)


def verify(request: SignedRequest, credentials: Credentials, service: str, now: float) -> Authorization:
    """Return the request's authorization when it is signed by `credentials`; raise ApiError otherwise."""
    auth = parse_authorization(request.headers.get("Authorization"))
    timestamp = request_timestamp(request)
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise ApiError("AuthFailure.SignatureExpire",
                       f"Signature expired: X-TC-Timestamp {timestamp} is more than {MAX_CLOCK_SKEW} seconds "
                       f"from the server time {int(now)}.")
    if auth.secret_id != credentials.secret_id:
        raise ApiError("AuthFailure.SecretIdNotFound", f"The SecretId `{auth.secret_id}` is not found.")
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    if auth.service != service or auth.date != date:
        raise ApiError("AuthFailure.SignatureFailure",
                       f"Credential scope {auth.date}/{auth.service} does not match {date}/{service}.")
    missing = [name for name in REQUIRED_SIGNED_HEADERS if name not in auth.signed_headers]
    if missing:
        raise _invalid_authorization(f"SignedHeaders must include {', '.join(missing)}")
    canonical = canonical_request(request, auth.signed_headers)
    key = signing_key(credentials.secret_key, auth.date, service)
    signed = string_to_sign(request.headers["X-TC-Timestamp"], auth.date, service, canonical)
    expected = hmac.new(key, signed.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise ApiError("AuthFailure.SignatureFailure",
                       "The provided credentials could not be validated: the signature does not match.")
    if credentials.token is not None:
        token = request.headers.get("X-TC-Token")
        if token is None:
            raise ApiError("AuthFailure.TokenFailure", "The session token (X-TC-Token) is missing.")
        if not hmac.compare_digest(token.encode(), credentials.token.encode()):
            raise ApiError("AuthFailure.TokenFailure", "The session token (X-TC-Token) is invalid.")
    return auth
