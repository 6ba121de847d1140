"""`ScfEmulator`: the local SCF API, its lifecycle, its functions and what it recorded."""
from __future__ import annotations

import threading
from typing import Any, Mapping

from .functions import DEFAULT_NAMESPACE, LATEST, Function, FunctionRegistry, Handler
from .invocations import Invocation, Invoker
from .invoke_api import ScfApi
from .server import ApiCall, ApiCallLog, ScfHttpServer, Services
from .signing import Credentials

DEFAULT_REGION = "ap-chongqing"


class ScfEmulator:
    """SCF's `Invoke` (API 3.0, TC3-HMAC-SHA256) on a local port, for tencentcloud-sdk-python's ScfClient.

    Point the SDK at it with `HttpProfile(endpoint=f"{emu.host}:{emu.port}", protocol="http")`.
    """

    def __init__(
        self,
        secret_id: str = "AKIDlocal",
        secret_key: str = "local-secret",
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = DEFAULT_REGION,
    ):
        self.region = region
        self._functions = FunctionRegistry(region)
        self._invoker = Invoker(region)
        self._log = ApiCallLog()
        self._services = Services(
            credentials=Credentials(secret_id, secret_key, token),
            api=ScfApi(self._functions, self._invoker),
            log=self._log,
        )
        self._address = (host, port)
        self._server: ScfHttpServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> ScfEmulator:
        if self._server is not None:
            return self
        self._invoker.open()
        self._server = ScfHttpServer(self._address, self._services)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="scf-emulator", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and abandon pending retries; handlers already running finish in the background."""
        server, self._server = self._server, None
        self._invoker.close()
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> ScfEmulator:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._running().server_address[0]

    @property
    def port(self) -> int:
        return self._running().server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _running(self) -> ScfHttpServer:
        if self._server is None:
            raise RuntimeError("the SCF emulator is not running: call start() first")
        return self._server

    # ------------------------------------------------------------- functions

    def register_function(
        self,
        name: str,
        handler: Handler,
        namespace: str = DEFAULT_NAMESPACE,
        qualifier: str = LATEST,
        *,
        retries: int = 2,
        retry_delay: float = 0.05,
        memory_mb: int = 256,
        timeout: float = 60.0,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """Make `handler(event, context)` reachable as `namespace/name:qualifier` in the emulator's region.

        An asynchronous invocation that fails (raises, or runs longer than `timeout` seconds) is tried
        `retries` more times, `retry_delay` seconds apart, then dead-lettered. Registering the same
        name, namespace and qualifier again replaces the function.
        """
        self._functions.register(Function(
            name=name, handler=handler, namespace=namespace, qualifier=qualifier, retries=retries,
            retry_delay=retry_delay, memory_mb=memory_mb, timeout=timeout, environment=dict(environment or {}),
        ))

    # --------------------------------------------------------------- records

    @property
    def invocations(self) -> list[Invocation]:
        """Every invocation in arrival order, as it stands now."""
        return self._invoker.records()

    def invocation(self, request_id: str) -> Invocation | None:
        """The invocation with this FunctionRequestId."""
        return self._invoker.find(request_id)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no invocation is queued, running or waiting for a retry; TimeoutError otherwise."""
        self._invoker.wait_idle(timeout)

    @property
    def requests(self) -> list[ApiCall]:
        """Every API request, in the order they were answered."""
        return self._log.snapshot()

    def clear(self) -> None:
        """Forget the request log and finished invocations (unfinished ones stay until they finish)."""
        self._log.clear()
        self._invoker.clear()
