"""The request an operation handles and the response it returns, independent of the socket."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO

from . import errors

CHUNK_SIZE = 1024 * 1024
_MAX_CHUNK_LINE = 65536


class IncompleteBody(errors.CosError):
    def __init__(self, message: str):
        super().__init__(400, "IncompleteBody", message)


class BodyReader:
    """Reads a request body sent with Content-Length or `Transfer-Encoding: chunked`, in chunks."""

    def __init__(self, rfile: BinaryIO, headers: Message):
        self._rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        declared = headers.get("Content-Length")
        self.declared_length: int | None = None
        # A body of unknown length cannot be read (nor skipped): reading it raises this error.
        self._unreadable: errors.CosError | None = None
        if not self.chunked and declared is not None:
            if declared.strip().isdigit():
                self.declared_length = int(declared)
            else:
                self._unreadable = errors.invalid_argument(f"Content-Length {declared!r} is not a byte count.")
        self._remaining = self.declared_length or 0  # bytes left (in the current chunk, when chunked)
        self._finished = self._unreadable is None and not self.chunked and self._remaining == 0

    @property
    def has_length(self) -> bool:
        return self.chunked or self.declared_length is not None

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The body's bytes; once reading fails, every later read fails the same way."""
        if self._unreadable is not None:
            raise self._unreadable
        try:
            yield from self._read(size)
        except IncompleteBody as error:
            self._unreadable = error
            raise
        except OSError as error:
            self._unreadable = IncompleteBody(f"Reading the request body failed: {error}.")
            raise self._unreadable from None

    def _read(self, size: int) -> Iterator[bytes]:
        while not self._finished:
            if self.chunked and self._remaining == 0:
                self._start_next_chunk()
                continue
            data = self._rfile.read(min(size, self._remaining))
            if not data:
                raise IncompleteBody("The client closed the connection before sending the whole body.")
            self._remaining -= len(data)
            if self._remaining == 0:
                if self.chunked:
                    self._expect_crlf()
                else:
                    self._finished = True
            yield data

    def read_all(self, limit: int) -> bytes:
        received = bytearray()
        for chunk in self.chunks():
            received += chunk
            if len(received) > limit:
                raise errors.CosError(400, "EntityTooLarge", f"The request body exceeds {limit} bytes.")
        return bytes(received)

    def drain(self) -> None:
        for _ in self.chunks():
            pass

    def _start_next_chunk(self) -> None:
        line = self._rfile.readline(_MAX_CHUNK_LINE)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise IncompleteBody("Malformed chunk size line in a chunked body.") from None
        if size == 0:
            while self._rfile.readline(_MAX_CHUNK_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._finished = True
        self._remaining = size

    def _expect_crlf(self) -> None:
        if self._rfile.readline(_MAX_CHUNK_LINE) not in (b"\r\n", b"\n"):
            raise IncompleteBody("A chunk of a chunked body was not followed by CRLF.")


@dataclass
class Request:
    method: str
    host: str  # as received, possibly with a port
    service: str  # "cos" | "ci"
    bucket: str
    region: str
    path: str  # URL-decoded, with the leading "/"
    query: dict[str, str]
    query_pairs: list[tuple[str, str]]
    headers: Message  # case-insensitive
    body: BodyReader
    request_id: str
    trace_id: str

    @property
    def key(self) -> str:
        return self.path[1:]

    @property
    def resource(self) -> str:
        return self.host.rsplit(":", 1)[0] + self.path

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # A file to stream instead of `body`: `stream_length` bytes from `stream_offset`. Closed once sent.
    stream: BinaryIO | None = None
    stream_offset: int = 0
    stream_length: int = 0

    @classmethod
    def xml(cls, body: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, [("Content-Type", "application/xml"), *(headers or [])], body)

    @property
    def content_length(self) -> int:
        return self.stream_length if self.stream is not None else len(self.body)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
