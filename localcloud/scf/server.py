"""The HTTP side: a threaded HTTP/1.1 server answering TencentCloud API 3.0 POST requests for SCF."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..serving import LocalHTTPServer, TrackedRequestHandler
from . import signing
from .errors import ApiError, missing_parameter
from .invoke_api import API_VERSION, SERVICE, ScfApi

logger = logging.getLogger("localcloud.scf")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API 3.0's request size limit


@dataclass(frozen=True)
class ApiCall:
    """One API request and how it was answered."""

    action: str | None
    params: Mapping[str, Any] | None = field(repr=False)  # the JSON body, once authenticated
    request_id: str
    secret_id: str | None  # as the Authorization header claims it
    region: str | None
    error_code: str | None
    error_message: str | None
    received_at: float

    @property
    def ok(self) -> bool:
        return self.error_code is None


class ApiCallLog:
    def __init__(self) -> None:
        self._calls: list[ApiCall] = []
        self._lock = threading.Lock()

    def append(self, call: ApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    def snapshot(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


@dataclass(eq=False)
class AnswerFault:
    """How the answers to matching requests go wrong. `trickle`: the status line and headers go
    out one byte every `trickle` seconds, a slow link or proxy that answers each read a client
    makes in time while the answer takes minutes (a network condition: nothing of Tencent's
    describes it). The request itself is handled as usual (an Event invocation is queued)."""

    action: str | None = None  # X-TC-Action to match; None: every request
    trickle: float | None = None
    times: int | None = 1  # None: forever
    hits: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.trickle is not None and self.trickle <= 0:
            raise ValueError("trickle must be a positive number of seconds or None")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be a positive number or None (always)")


class AnswerFaults:
    def __init__(self) -> None:
        self._faults: list[AnswerFault] = []
        self._lock = threading.Lock()

    def add(self, fault: AnswerFault) -> AnswerFault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, action: str | None) -> AnswerFault | None:
        with self._lock:
            for fault in self._faults:
                live = fault.times is None or fault.hits < fault.times
                if live and fault.action in (None, action):
                    fault.hits += 1
                    return fault
        return None


@dataclass
class Services:
    credentials: signing.Credentials
    api: ScfApi
    log: ApiCallLog
    faults: AnswerFaults = field(default_factory=AnswerFaults)


class ScfHttpServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], services: Services):
        self.services = services
        super().__init__(address, RequestHandler)


class RequestHandler(TrackedRequestHandler):
    timeout = 120  # seconds an idle keep-alive connection stays open
    server: ScfHttpServer

    def version_string(self) -> str:
        return "scf-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_POST

    def _serve(self) -> None:
        services = self.server.services
        received_at = time.time()
        request_id = str(uuid.uuid4())
        action = self.headers.get("X-TC-Action")
        region = self.headers.get("X-TC-Region")
        secret_id = _claimed_secret_id(self.headers.get("Authorization"))
        params = None
        try:
            body = self._read_body()
            url = urlsplit(self.path)
            request = signing.SignedRequest(self.command, url.path or "/", url.query, self.headers, body)
            signing.verify(request, services.credentials, SERVICE, received_at)
            params = _parse_params(self.headers, body)
            if action is None:
                raise missing_parameter("Action")
            if region is None:
                raise missing_parameter("Region")
            response = services.api.handle(action, params, region)
            error = None
        except ApiError as api_error:
            error = api_error
        except Exception as unexpected:
            logger.exception("SCF emulator: %s failed", action)
            error = ApiError("InternalError", f"{type(unexpected).__name__}: {unexpected}")
        if error is not None:
            response = {"Error": {"Code": error.code, "Message": error.message}}
        response["RequestId"] = request_id
        fault = services.faults.take(action)
        if fault is not None and fault.trickle:
            self.head_pause = fault.trickle
        services.log.append(ApiCall(
            action=action, params=params, request_id=request_id, secret_id=secret_id, region=region,
            error_code=error and error.code, error_message=error and error.message, received_at=received_at,
        ))
        self._send_json({"Response": response})

    def _read_body(self) -> bytes:
        if self.command != "POST":
            self.close_connection = True  # any body stays unread
            raise ApiError("UnsupportedOperation",
                           f"The SCF emulator accepts POST requests with a JSON body (the SDK's default), "
                           f"not {self.command}.")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError("RequestSizeLimitExceeded",
                           f"The request body is {length} bytes; at most {MAX_BODY_BYTES} are accepted.")
        return self.rfile.read(length)

    def _send_json(self, document: dict) -> None:
        body = json.dumps(document, ensure_ascii=False).encode()
        self.send_response(200)
        # Exactly this value: the SDK only looks for an Error in responses typed application/json.
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _claimed_secret_id(authorization: str | None) -> str | None:
    try:
        return signing.parse_authorization(authorization).secret_id
    except ApiError:
        return None


def _parse_params(headers: Mapping[str, str], body: bytes) -> dict:
    version = headers.get("X-TC-Version")
    if version is None:
        raise missing_parameter("Version")
    if version != API_VERSION:
        raise ApiError("NoSuchVersion", f"The API version `{version}` of scf does not exist; use {API_VERSION}.")
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError("UnsupportedOperation",
                       f"The SCF emulator accepts a JSON body (application/json), not `{content_type}`.")
    try:
        params = json.loads(body or b"{}")
    except ValueError as error:
        raise ApiError("InvalidParameter", f"The request body is not valid JSON: {error}.") from None
    if not isinstance(params, dict):
        raise ApiError("InvalidParameter", "The request body must be a JSON object.")
    return params
