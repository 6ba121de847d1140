"""Fault injection and the request log.

`reset` with `truncate` sends that many bytes of the body, then resets the connection (a
transfer cut mid-way); `reset` alone resets it before any answer.

`trickle` sends the answer's status line and headers one byte every `trickle` seconds, and
`trickle_body` its body so: a slow link or proxy, which answers each read a client makes in
time while the answer as a whole takes minutes. (A network condition, not a COS behaviour:
nothing of Tencent's describes it.) It goes on until the answer is out, the client hangs up or
the emulator stops.

A fault is consumed (its `hits` grows, `remaining` shrinks) when a request matches it,
whether or not its action turns out to apply to that request (a `truncate` fault on a
request that answers an error simply does nothing).
"""
from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

KeyMatcher = Union[str, "re.Pattern[str]", None]

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
SERVICES = ("cos", "ci")
NO_QUERY = "!"


@dataclass(eq=False)
class Fault:
    method: str | None = None
    key: KeyMatcher = None
    query: str | None = None
    service: str | None = "cos"
    status: int | None = None
    code: str | None = None
    delay: float | None = None
    reset: bool = False
    truncate: int | None = None
    copy_error_body: bool = False
    trickle: float | None = None  # seconds between the bytes of the status line and headers
    trickle_body: float | None = None  # seconds between the bytes of the body
    times: int | None = 1
    # The request's Range header, exactly ("bytes=0-8388607"); "!" for requests without one.
    byte_range: str | None = None
    hits: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.method is not None:
            self.method = self.method.upper()
            if self.method not in METHODS:
                raise ValueError(f"method must be one of {METHODS} or None, not {self.method!r}")
        if self.service is not None and self.service not in SERVICES:
            raise ValueError(f"service must be one of {SERVICES} or None, not {self.service!r}")
        if self.key is not None and not isinstance(self.key, (str, re.Pattern)):
            raise TypeError("key must be a string, a compiled re.Pattern or None")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be a positive number or None (always)")
        if self.truncate is not None and self.truncate < 0:
            raise ValueError("truncate must be a byte count >= 0")
        for name in ("trickle", "trickle_body"):
            pause = getattr(self, name)
            if pause is not None and pause <= 0:
                raise ValueError(f"{name} must be a positive number of seconds or None")

    @property
    def remaining(self) -> int | None:
        """Requests this fault still applies to; None when it applies forever."""
        return None if self.times is None else max(self.times - self.hits, 0)

    @property
    def answers_error(self) -> bool:
        return self.status is not None

    def matches(self, service: str, method: str, key: str, query: Mapping[str, str],
                byte_range: str | None = None) -> bool:
        if self.byte_range is not None and self.byte_range != (byte_range or NO_QUERY):
            return False
        if self.service is not None and self.service != service:
            return False
        if self.method is not None and self.method != method:
            return False
        if isinstance(self.key, str) and self.key != key:
            return False
        if isinstance(self.key, re.Pattern) and not self.key.search(key):
            return False
        if self.query == NO_QUERY:
            return not query
        return self.query is None or self.query in query


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, service: str, method: str, key: str, query: Mapping[str, str],
             byte_range: str | None = None) -> Fault | None:
        """The first live fault matching the request, counting the request against it."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining != 0 and fault.matches(service, method, key, query, byte_range):
                    fault.hits += 1
                    return fault
        return None


@dataclass(frozen=True)
class RequestRecord:
    service: str  # "cos" | "ci" ("" when the Host header named neither)
    method: str
    bucket: str
    key: str  # "" for bucket-level requests
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    status: int  # 0 when the connection was reset
    fault: bool  # a fault was applied
    started: float  # time.monotonic()
    finished: float

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "DELETE")


class RequestLog:
    """Finished requests, in the order they arrived (a slow request keeps its place)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals = itertools.count()
        self._records: list[tuple[int, RequestRecord]] = []

    def arrival(self) -> int:
        return next(self._arrivals)

    def append(self, arrival: int, record: RequestRecord) -> None:
        with self._lock:
            self._records.append((arrival, record))

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return [record for _, record in sorted(self._records, key=lambda item: item[0])]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
