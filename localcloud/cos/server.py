"""The HTTP side: a threaded HTTP/1.1 keep-alive server that turns each request into a `Request`,
applies faults, checks the signature, runs the COS or CI operation and streams the answer."""
from __future__ import annotations

import base64
import logging
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ..serving import LocalHTTPServer, TrackedRequestHandler
from . import auth, errors
from .ci import CiApi
from .cos_api import CosApi
from .exchange import BodyReader, Request, Response
from .faults import Fault, FaultInjector, RequestLog, RequestRecord
from .hosts import parse_host
from .object_ops import MAX_SINGLE_UPLOAD

logger = logging.getLogger("localcloud.cos")

_TOKEN_HEADERS = {"cos": "x-cos-security-token", "ci": "x-ci-security-token"}


@dataclass
class Services:
    """What the request handler works with; owned by the emulator."""

    credentials: auth.Credentials
    cos: CosApi
    ci: CiApi
    faults: FaultInjector
    log: RequestLog
    # Bytes per second each connection's object bodies are sent at (None: as fast as possible).
    # An object store limits each connection, not the client: COS's own single-connection
    # limit (x-cos-traffic-limit, https://cloud.tencent.com/document/product/436/40140, English
    # https://www.tencentcloud.com/document/product/436/34072) and the share of a link one TCP
    # stream gets. Several connections then read faster than one, which is what ranged
    # parallel reads are for.
    bandwidth_per_connection: int | None = None


class EmulatorHttpServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], services: Services):
        self.services = services
        super().__init__(address, RequestHandler)


def _new_request_id() -> str:
    raw = f"{int(time.time()):x}_{uuid.uuid4().hex[:8]}_{os.getpid():x}_{uuid.uuid4().hex[:6]}"
    return base64.b64encode(raw.encode()).decode().rstrip("=")


def _new_trace_id() -> str:
    return base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("=")


class RequestHandler(TrackedRequestHandler):
    timeout = 300  # seconds an idle keep-alive connection stays open
    server: EmulatorHttpServer

    def version_string(self) -> str:
        return "tencent-cos"

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    # ------------------------------------------------------------------ flow

    def _serve(self) -> None:
        services = self.server.services
        arrival = services.log.arrival()
        started = time.monotonic()
        request = self._parse_request()
        fault = self._take_fault(request)
        recorded = False

        def record(status: int) -> None:
            # Logged before the answer goes out, so a client that has its response finds the record.
            nonlocal recorded
            recorded = True
            services.log.append(arrival, RequestRecord(
                service=request.service, method=request.method, bucket=request.bucket, key=request.key,
                query=dict(request.query), headers={name.lower(): value for name, value in self.headers.items()},
                status=status, fault=fault is not None, started=started, finished=time.monotonic(),
            ))

        try:
            self._process(request, fault, record)
        finally:
            if not recorded:
                record(0)

    def _parse_request(self) -> Request:
        target = urlsplit(self.path)  # origin-form, or absolute-form when the client uses us as a proxy
        query_pairs = parse_qsl(target.query, keep_blank_values=True)
        host = self.headers.get("Host") or target.netloc
        virtual_host = parse_host(host)
        return Request(
            method=self.command,
            host=host,
            service=virtual_host.service if virtual_host else "",
            bucket=virtual_host.bucket if virtual_host else "",
            region=virtual_host.region if virtual_host else "",
            path=unquote(target.path or "/"),
            query=dict(query_pairs),
            query_pairs=query_pairs,
            headers=self.headers,
            body=BodyReader(self.rfile, self.headers),
            request_id=_new_request_id(),
            trace_id=_new_trace_id(),
        )

    def _take_fault(self, request: Request) -> Fault | None:
        if not request.service:
            return None
        return self.server.services.faults.take(request.service, request.method, request.key, request.query,
                                                request.header("Range"))

    def _process(self, request: Request, fault: Fault | None, record: Callable[[int], None]) -> None:
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.reset and fault.truncate is None:
            record(0)
            self._reset_connection()
            return
        if fault is not None and fault.answers_error:
            error = errors.CosError(fault.status, fault.code or errors.default_code(fault.status))
            response = self._error_response(request, error)
        else:
            response = self._run(request, fault)
        try:
            self._drain(request)
            record(response.status)
            if fault is not None and fault.trickle:
                self.head_pause = fault.trickle
            self._send(request, response, fault.truncate if fault is not None else None,
                       fault.trickle_body if fault is not None else None)
            if fault is not None and fault.reset:
                self._reset_connection()  # `truncate` bytes of the body went out: a reset mid-transfer
        except OSError:
            self.close_connection = True
        finally:
            response.close()

    def _run(self, request: Request, fault: Fault | None) -> Response:
        services = self.server.services
        try:
            if not request.service:
                raise errors.CosError(
                    400, "InvalidRequest",
                    f"Host {request.host!r} names no bucket: use <bucket>.cos.<region>.myqcloud.com "
                    "or <bucket>.ci.<region>.myqcloud.com.",
                )
            auth.verify(auth.SignedRequest(
                method=request.method, path=request.path, query=request.query_pairs, headers=request.headers,
                token_header=_TOKEN_HEADERS[request.service],
            ), services.credentials)
            if request.service == "ci":
                return services.ci.handle(request)
            return services.cos.handle(request, fault)
        except errors.CosError as error:
            return self._error_response(request, error)
        except Exception:  # an emulator bug must still answer like a server would
            logger.exception("COS emulator failed on %s %s", request.method, request.path)
            return self._error_response(request, errors.CosError(500, "InternalError"))

    def _error_response(self, request: Request, error: errors.CosError) -> Response:
        body = b"" if request.method == "HEAD" else errors.error_body(
            error.code, error.message, request.resource, request.request_id, request.trace_id,
        )
        return Response(error.status, [("Content-Type", "application/xml"), *error.headers], body)

    # --------------------------------------------------------------- sending

    def _drain(self, request: Request) -> None:
        """Read what the operation left of the body, so the connection can serve the next request."""
        if (request.body.declared_length or 0) > MAX_SINGLE_UPLOAD:
            self.close_connection = True  # more than COS ever accepts: not worth reading
            return
        try:
            request.body.drain()
        except (errors.CosError, OSError):
            self.close_connection = True

    def _send(self, request: Request, response: Response, truncate: int | None,
              trickle: float | None = None) -> None:
        self.send_response(response.status)
        self.send_header("x-cos-request-id", request.request_id)
        if request.service == "ci":
            self.send_header("x-ci-request-id", request.request_id)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        bodiless = response.status in (204, 304)
        if not bodiless and "content-length" not in names:
            self.send_header("Content-Length", str(response.content_length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if request.method == "HEAD" or bodiless:
            return
        if response.stream is None:
            if trickle:
                self._send_trickled(response.body, trickle)
                return
            self.wfile.write(response.body)
            return
        length = response.stream_length
        if truncate is not None and truncate < length:
            length = truncate
            self.close_connection = True  # the client then sees the body end early
        if length <= 0:  # socket.sendfile refuses a count of 0: an empty object has nothing to send
            return
        if trickle:
            response.stream.seek(response.stream_offset)
            self._send_trickled(response.stream.read(length), trickle)
            return
        rate = self.server.services.bandwidth_per_connection
        if not rate:
            self.connection.sendfile(response.stream, response.stream_offset, length)
            return
        self._send_paced(response, length, rate)

    def _send_trickled(self, body: bytes, pause: float) -> None:
        for i in range(len(body)):
            self.wfile.write(body[i:i + 1])
            time.sleep(pause)

    def _send_paced(self, response: Response, length: int, rate: int) -> None:
        """The body at `rate` bytes per second: small slices, each sent once the slices before
        it have had their time (so the average holds, not just each slice's)."""
        self.wfile.flush()
        slice_bytes = max(16 * 1024, min(256 * 1024, rate // 100))
        started = time.monotonic()
        sent = 0
        while sent < length:
            count = min(slice_bytes, length - sent)
            self.connection.sendfile(response.stream, response.stream_offset + sent, count)
            sent += count
            wait = started + sent / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP RST and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The socket really closes (and resets) only once its makefile() reader is closed too.
        self.connection.close()
        self.rfile.close()

