"""`ScfEmulator`: the local SCF API, its lifecycle, its functions and what it recorded."""
from __future__ import annotations

from collections.abc import Mapping

from ..serving import BackgroundServer
from .functions import DEFAULT_NAMESPACE, LATEST, Function, FunctionRegistry, Handler
from .invocations import Invocation, Invoker
from .invoke_api import ScfApi
from .server import AnswerFault, ApiCall, ApiCallLog, ScfHttpServer, Services
from .signing import Credentials

DEFAULT_REGION = "ap-chongqing"


class ScfEmulator(BackgroundServer):
    """SCF's `Invoke` (API 3.0, TC3-HMAC-SHA256) on a local port, for tencentcloud-sdk-python's ScfClient.

    Point the SDK at it with `HttpProfile(endpoint=f"{emu.host}:{emu.port}", protocol="http")`.
    """

    _label = "SCF emulator"

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
        super().__init__((host, port))

    # ------------------------------------------------------------- lifecycle

    def _new_server(self) -> ScfHttpServer:
        return ScfHttpServer(self._address, self._services)

    def start(self) -> ScfEmulator:
        self._invoker.open()  # undoes a previous stop(): failed invocations are retried again
        return super().start()

    def stop(self) -> None:
        """Stop serving and abandon pending retries; handlers already running finish in the background."""
        self._invoker.close()
        super().stop()

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

    # ---------------------------------------------------------------- faults

    def add_fault(self, action: str | None = "Invoke", trickle: float | None = None,
                  times: int | None = 1) -> AnswerFault:
        """Answer the next `times` matching requests (None: all) badly; see `AnswerFault`."""
        return self._services.faults.add(AnswerFault(action=action, trickle=trickle, times=times))

    def clear_faults(self) -> None:
        self._services.faults.clear()

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
