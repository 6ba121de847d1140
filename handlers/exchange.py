"""Outbound HTTP exchanges bounded as a whole, not per socket read.

requests' `timeout` bounds the connect and each socket read. A server, or a proxy in front of
it, that sends its status line and headers a byte at a time answers every read in time, and the
exchange never ends: a 4 s invocation was held for 18 s by such a notification receiver (SCF
would have killed it: no answer for CI, no report). Every session the function sends through
(COS and CI, SCF's Invoke, the webhooks) mounts `BoundedAdapter`, which makes `timeout` mean
the whole exchange: when it passes, one watchdog thread shuts the connection's socket down, the
blocked read returns at once, and the caller gets `ExchangeTimeout` (a requests Timeout).

`timeout` may be a number (seconds for everything, a streamed body included) or a `Limit`,
which adds the invocation's deadline. A streamed answer is bounded like any other, its body
included, unless its Limit says `content`: an object's content read for its hash (minutes for
a big one) may then read until that deadline, but no longer, however slowly it comes. The
caller says so, explicitly (cos.ObjectStore's content GETs): an SDK streams small answers too
(the synchronous filehash, an audit report), and those get no more time than a HEAD.

`BROKEN_ANSWER` is what an answer read after the exchange (as the SDKs do) raises when it was
cut or broke off: a requests or urllib3 error, a socket's, or the XML parser's on what arrived.
"""
from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import ParseError

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

THREAD_NAME = "exchange-watchdog"
# A streamed body's reader checks the deadline between chunks and says why it stopped (a hash
# out of time); the watchdog cuts a body that stops flowing or trickles this much later, well
# inside the second kept back to answer (handlers/deadline.RESERVE_SECONDS).
STREAM_GRACE_SECONDS = 0.5
# A connection whose socket is not there yet when its time is up is looked at again this often,
# for this long: its connect is bounded by the exchange's time itself.
_POLL_SECONDS = 0.05
_CONNECT_SLACK_SECONDS = 0.5

# What reading and parsing a cut or broken answer raises outside the exchange: the SDK reads a
# streamed answer (`rt.content`) and parses its XML after the adapter has returned it. Callers
# sort these with the network's failures: worth trying again.
BROKEN_ANSWER: tuple[type[BaseException], ...] = (
    ParseError, requests.RequestException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class Limit:
    """A requests `timeout=` for a BoundedAdapter: at most `seconds` for the exchange (status
    line, headers and body, streamed or not), never past `until` (a time.monotonic() value: the
    invocation's deadline). `content`: the answer is an object's content, streamed to be hashed;
    its body alone may read past `seconds`, until `until` (it has no bound but that)."""

    seconds: float
    until: float | None = None
    content: bool = False


class ExchangeTimeout(requests.exceptions.ReadTimeout):
    """The whole exchange took longer than its limit (however promptly each read was answered)."""


class _Watch:
    """One exchange's deadline, and the connection it runs on once the pool has given it one."""

    __slots__ = ("armed", "at", "connection", "fired")

    def __init__(self, at: float):
        self.at = at
        self.armed = True
        self.fired = False
        self.connection: object | None = None  # a urllib3 connection


class _Watchdog:
    """One thread for all exchanges: a heap of deadlines, each cutting its connection when it
    passes. Finished exchanges are disarmed, not removed (cheap), and dropped when they reach the
    top of the heap or when they make up most of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._disarmed = 0  # entries in the heap whose watch is disarmed
        self._watching: weakref.WeakKeyDictionary[object, _Watch] = weakref.WeakKeyDictionary()
        self._thread: threading.Thread | None = None

    def arm(self, at: float) -> _Watch:
        watch = _Watch(at)
        with self._lock:
            self._push(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
        return watch

    def postpone(self, watch: _Watch, at: float) -> None:
        """Move a watch later; its heap entry is rescheduled when it comes up."""
        with self._lock:
            if watch.armed and at > watch.at:
                watch.at = at

    def disarm(self, watch: _Watch) -> None:
        with self._lock:
            self._disarm(watch)

    def bind(self, connection: object, watch: _Watch | None) -> bool:
        """The pool gave `connection` to the exchange `watch` guards; False when its time is up."""
        with self._lock:
            if watch is None:
                self._watching.pop(connection, None)
                return True
            watch.connection = connection
            self._watching[connection] = watch
            return not watch.fired

    def release(self, connection: object) -> None:
        """The connection is back in its pool: its exchange is over."""
        with self._lock:
            watch = self._watching.pop(connection, None)
            if watch is not None:
                self._disarm(watch)

    def reset_after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the thread and the lock's state stay in the parent

    def _push(self, watch: _Watch) -> None:
        entry = (watch.at, next(self._order), watch)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._changed.notify()

    def _disarm(self, watch: _Watch) -> None:
        if not watch.armed:
            return
        watch.armed = False
        watch.connection = None
        self._disarmed += 1
        if self._disarmed > 256 and self._disarmed * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].armed]
            heapq.heapify(self._heap)
            self._disarmed = 0

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap:
                    at, _, watch = self._heap[0]
                    if not watch.armed:
                        heapq.heappop(self._heap)
                        self._disarmed -= 1
                    elif watch.at > at:  # postponed
                        heapq.heapreplace(self._heap, (watch.at, next(self._order), watch))
                    elif at <= now:
                        watch.fired = True
                        if self._cut(watch, now):
                            heapq.heappop(self._heap)
                            watch.armed, watch.connection = False, None
                        else:
                            heapq.heapreplace(self._heap, (now + _POLL_SECONDS, next(self._order), watch))
                    else:
                        break
                self._changed.wait(self._heap[0][0] - now if self._heap else None)

    def _cut(self, watch: _Watch, now: float) -> bool:
        """Shut the exchange's socket down; False to look again shortly, when its connection
        has no socket yet (a connect under way, which its own timeout ends soon after)."""
        connection = watch.connection
        if connection is None or self._watching.get(connection) is not watch:
            return True  # no connection yet (the pool then refuses it one), or it serves another exchange now
        sock = getattr(connection, "sock", None)
        if sock is None:
            return now > watch.at + _CONNECT_SLACK_SECONDS  # connecting, or closed by its reader
        if isinstance(sock, socket.socket):
            try:
                # socket.socket's own shutdown, also for an SSLSocket (whose override drops its
                # TLS state under a reader on another thread): the blocked read sees the end at once.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
        return True


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset_after_fork)
_pending = threading.local()  # the watch of the exchange this thread is sending, for the pool


def _pending_watch() -> _Watch | None:
    watch: _Watch | None = getattr(_pending, "watch", None)
    return watch


class _WatchedHTTPPool(HTTPConnectionPool):
    """Tells the watchdog which connection an exchange got, and when it went back to the pool."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        if not _WATCHDOG.bind(connection, _pending_watch()):
            self._put_conn(connection)
            raise urllib3.exceptions.ConnectTimeoutError(self, "the exchange's time ran out before it started")
        return connection

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            _WATCHDOG.release(conn)
        super()._put_conn(conn)


class _WatchedHTTPSPool(_WatchedHTTPPool, HTTPSConnectionPool):
    pass


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose `timeout` bounds the whole exchange (see the module's docstring).
    `read_body`: read the answer within the exchange even when the caller streams it, for a
    client that reads it after the send returns (tencentcloud-sdk-python does)."""

    def __init__(self, *, read_body: bool = False, **kwargs: Any):
        self._read_body = read_body
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> ProxyManager:
        manager: ProxyManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOLS  # an HTTP proxy; a SOCKS one keeps its own pools
        return manager

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        limit = _limit_of(timeout)
        if limit is None:
            return super().send(request, stream, timeout, verify, cert, proxies)
        started = time.monotonic()
        ends = started + limit.seconds if limit.until is None else min(started + limit.seconds, limit.until)
        if ends - started <= 0:
            raise ExchangeTimeout("no time was left for the exchange", request=request)
        watch = _WATCHDOG.arm(ends)
        _pending.watch = watch
        try:
            response = super().send(request, stream, ends - started, verify, cert, proxies)
        except requests.RequestException:
            _WATCHDOG.disarm(watch)
            if watch.fired:
                raise ExchangeTimeout(_cut(ends - started), request=request) from None
            raise
        finally:
            _pending.watch = None
        if stream and not self._read_body:
            if watch.fired:  # cut in its headers: http.client takes the end of the socket for their end
                _WATCHDOG.disarm(watch)
                response.close()
                raise ExchangeTimeout(_cut(ends - started), request=request)
            if limit.content and limit.until is not None:
                _WATCHDOG.postpone(watch, limit.until + STREAM_GRACE_SECONDS)
            # Any other streamed body is read by the caller within the exchange's own time.
            return response  # disarmed when the connection goes back to the pool
        try:
            response.content  # noqa: B018  # read here, within the watch
        except requests.RequestException:
            if watch.fired:
                raise ExchangeTimeout(_cut(ends - started), request=request) from None
            raise
        finally:
            _WATCHDOG.disarm(watch)
        if watch.fired:  # a body without a length ends where the connection was cut
            raise ExchangeTimeout(_cut(ends - started), request=request)
        return response


def _limit_of(timeout: Any) -> Limit | None:
    """None (requests' default) leaves the exchange unbounded; a (connect, read) pair bounds it
    by their sum; anything else is a number of seconds."""
    if timeout is None or isinstance(timeout, Limit):
        return timeout
    if isinstance(timeout, tuple):
        return Limit(sum(float(part or 0) for part in timeout))
    return Limit(float(timeout))


def _cut(seconds: float) -> str:
    return f"no whole answer within {seconds:.1f} s"


def mount(session: requests.Session, adapter: BoundedAdapter) -> None:
    session.mount("http://", adapter)
    session.mount("https://", adapter)
