"""HTTP plumbing the local emulators share: a threaded keep-alive server that can cut its open connections,
a background thread that runs it, and the CLI loop that serves until SIGINT or SIGTERM."""
from __future__ import annotations

import signal
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar


class LocalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler_class: type[TrackedRequestHandler]):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler_class)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Cut kept-alive connections too, so that a stopped server answers nothing."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TrackedRequestHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 handler whose connection its `LocalHTTPServer` can cut while it waits for the next request."""

    protocol_version = "HTTP/1.1"
    server: LocalHTTPServer
    # Seconds between the bytes of the next answer's status line and headers (0: all at once),
    # set per answer by a fault. A link or proxy that slow answers every read a client makes
    # within its timeout while the answer never completes: what a client's bound on the whole
    # exchange, not on each socket read, is tested against. It goes on until the head is out or
    # the client hangs up (the next write fails), or the server stops (it cuts the connection).
    head_pause = 0.0

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, each response waits for a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def flush_headers(self) -> None:
        pause, self.head_pause = self.head_pause, 0.0
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        if not pause or not buffered:
            super().flush_headers()
            return
        head, self._headers_buffer = b"".join(buffered), []
        for i in range(len(head)):  # wfile is unbuffered and TCP_NODELAY is on: one byte per segment
            self.wfile.write(head[i:i + 1])
            time.sleep(pause)


_Self = TypeVar("_Self", bound="BackgroundServer")


class BackgroundServer:
    """Runs the server `_new_server()` makes on a daemon thread, from `start()` (or `with`) to `stop()`."""

    _label = "server"  # what it is called in its thread's name, errors and the CLI's banner

    def __init__(self, address: tuple[str, int]):
        self._address = address
        self._server: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _new_server(self) -> LocalHTTPServer:
        raise NotImplementedError

    def start(self: _Self) -> _Self:
        if self._server is not None:
            return self
        self._server = self._new_server()
        # stop() waits for the loop to see shutdown()'s flag, which it looks at every poll_interval: the tests
        # start and stop an emulator each, and 10 ms instead of 100 takes a minute off the suite (idle, the
        # loop costs 100 select() calls a second).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
            name=self._label.lower().replace(" ", "-"), daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._running().server_name

    @property
    def port(self) -> int:
        return self._running().server_port

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _running(self) -> LocalHTTPServer:
        if self._server is None:
            raise RuntimeError(f"the {self._label} is not running: call start() first")
        return self._server


def serve_until_signalled(server: BackgroundServer) -> None:
    """Start `server`, print where it listens, and stop it on SIGINT or SIGTERM."""
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    server.start()
    try:
        print(f"{server._label} listening on {server.endpoint}", flush=True)
        while not stopped.wait(1.0):
            pass
    finally:
        server.stop()
