"""Delivering a request: one POST per attempt, bounded as a whole, again on 5xx, 429 and timeouts while the
invocation's deadline allows, the answer read up to a size and judged by the format's rule. What a request
holds is the vendor modules' (they build a `Request`); whether the message was already sent is record.py's."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from handlers import exchange
from handlers.deadline import MIN_ATTEMPT_SECONDS, Deadline, retrying
from handlers.errors import TransientError

ATTEMPT_SECONDS = 5.0  # one delivery attempt waits at most this long (less when the invocation has less)
MAX_ANSWER_BYTES = 64 * 1024  # a robot answers a small JSON object; the rest is never read
USER_AGENT = "ci-callback-verifier"


@dataclass(frozen=True)
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes


def json_headers() -> dict[str, str]:
    """The headers every format sends (Standard Webhooks adds its own after them)."""
    return {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}


Send = Callable[[Request, float], "tuple[int, bytes]"]
Refusal = Callable[[bytes], str]  # why a receiver that answered 2xx refused the message ('' when it took it)


class DeliveryFailed(Exception):
    pass


class Sender:
    """POSTs with requests (vendored with the COS SDK); one session per container. Its adapter
    (handlers/exchange.py) bounds each attempt as a whole, status line, headers and body, by
    `timeout`: requests' own bounds each socket read, which a receiver or a proxy that sends a
    byte at a time answers in time for ever."""

    def __init__(self) -> None:
        self._session = requests.Session()
        exchange.mount(self._session, exchange.BoundedAdapter())

    def __call__(self, request: Request, timeout: float) -> tuple[int, bytes]:
        until = time.monotonic() + timeout
        try:
            answer = self._session.post(request.url, data=request.body, headers=dict(request.headers),
                                        timeout=timeout, allow_redirects=False, stream=True)
        except requests.Timeout:
            raise TransientError(f"no answer within {timeout:.1f} s") from None
        except requests.RequestException as exc:
            raise TransientError(f"the request failed: {type(exc).__name__}") from None
        try:
            body = _body_within(answer.raw)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            if time.monotonic() >= until:
                raise TransientError(f"no whole answer within {timeout:.1f} s") from None
            raise TransientError(f"the answer broke off: {type(exc).__name__}") from None
        finally:
            answer.close()
        if time.monotonic() >= until:  # an answer without a length ends where its time cut it
            raise TransientError(f"no whole answer within {timeout:.1f} s")
        return answer.status_code, body


def _body_within(raw: Any) -> bytes:
    """The answer's body, up to MAX_ANSWER_BYTES (the session's adapter bounds the time)."""
    body = bytearray()
    while len(body) < MAX_ANSWER_BYTES:
        # What has arrived (it waits for no more), decoded: requests offers gzip and deflate.
        piece = raw.read1(MAX_ANSWER_BYTES - len(body), decode_content=True)
        if not piece:
            break
        body += piece
    return bytes(body)


def deliver(request: Request, refusal: Refusal, send: Send, deadline: Deadline) -> None:
    """Send once, again on 5xx, 429 and timeouts while the deadline allows; raises DeliveryFailed."""
    def attempt() -> None:
        left = deadline.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            raise DeliveryFailed("too little of the invocation's time was left to send it")
        status, body = send(request, min(ATTEMPT_SECONDS, left))
        if status >= 500 or status == 429:
            raise TransientError(f"the receiver answered {status}")
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the receiver answered {status}")
        refused = refusal(body)
        if refused:
            raise DeliveryFailed(refused)
    try:
        retrying(attempt, deadline)
    except TransientError as exc:
        raise DeliveryFailed(str(exc)) from None


_sender: Sender | None = None


def default_sender() -> Sender:
    """The container's one Sender, built on first use."""
    global _sender
    if _sender is None:
        _sender = Sender()
    return _sender
