"""The HTTP edge: Function URL and API-Gateway-shaped events in, integrated responses out."""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased: platforms and gateways disagree on case
    query: Mapping[str, str]
    body: bytes
    source_ip: str = ""


class HttpError(Exception):
    """A request the function answers with a 4xx/5xx before doing any work."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


def request_from_event(event: Mapping[str, Any]) -> HttpRequest:
    """Read a Function URL event, or the API Gateway shape (legacy, or a gateway that forwards it)."""
    headers = {str(k).lower(): _first(v) for k, v in _mapping(event, "headers").items()}
    query: dict[str, str] = {}
    for source in ("queryStringParameters", "queryString"):
        for key, value in _mapping(event, source).items():
            query.setdefault(str(key), _first(value))
    context = event.get("requestContext")
    context = context if isinstance(context, dict) else {}
    return HttpRequest(
        method=str(event.get("httpMethod") or "").upper(),
        path=str(event.get("path") or "/"),
        headers=headers,
        query=query,
        body=_body(event),
        # API Gateway puts the caller in requestContext; a Function URL in x-scf-remote-addr.
        source_ip=str(context.get("sourceIp") or headers.get("x-scf-remote-addr")
                      or headers.get("x-forwarded-for", "")),
    )


def _mapping(event: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = event.get(name)
    if not value:
        return {}
    if not isinstance(value, dict):
        raise HttpError(400, f"the event's {name} is a {type(value).__name__}, not an object")
    return value


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")  # a lone surrogate is the parser's to refuse
    elif isinstance(body, (bytes, bytearray)):
        raw = bytes(body)
    else:  # bytes(n) of a number would allocate n bytes
        raise HttpError(400, f"the event's body is a {type(body).__name__}, not text")
    if event.get("isBase64Encoded") in (True, "true", "True"):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "isBase64Encoded is set but the body is not valid base64") from None
    return raw


def response(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        "body": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    }


def error_response(error: HttpError) -> dict[str, Any]:
    return response(error.status, {"error": error.reason}, error.headers)
