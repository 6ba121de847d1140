"""A local emulator of Tencent SCF's API 3.0 `Invoke`, for tests and the demo (never deployed).

    from localcloud.scf import ScfEmulator
    with ScfEmulator(secret_id="AKIDlocal", secret_key="local-secret") as emu:
        emu.register_function("ci-callback-verifier", handler)   # handler(event, context)
        # tencentcloud-sdk-python: ScfClient(cred, "ap-chongqing", ClientProfile(httpProfile=
        #     HttpProfile(endpoint=f"{emu.host}:{emu.port}", protocol="http")))
        ...
        emu.wait_idle()           # every asynchronous invocation has finished
        emu.invocations           # [Invocation(status="succeeded", attempts=1, payload=..., ...)]

Behaviour worth knowing:
- Requests must be TC3-HMAC-SHA256-signed POSTs with a JSON body (the SDK's defaults). Errors come back as
  API 3.0 does it, HTTP 200 with `Response.Error`: AuthFailure.InvalidAuthorization (bad header),
  AuthFailure.SignatureExpire (timestamp more than 5 minutes off), AuthFailure.SecretIdNotFound,
  AuthFailure.SignatureFailure, AuthFailure.TokenFailure (only when the emulator has a token; without one,
  an X-TC-Token is ignored), MissingParameter, NoSuchVersion, InvalidAction (anything but Invoke),
  UnknownParameter, InvalidParameter, UnsupportedOperation (not a JSON POST), RequestSizeLimitExceeded.
- Invoke: unknown function (or another region) -> ResourceNotFound.Function; known function, unknown
  qualifier -> ResourceNotFound.Qualifier (`$DEFAULT` falls back to `$LATEST`, as SCF's default alias does);
  bad InvocationType -> InvalidParameterValue; ClientContext over 128 KB (Event) or 6 MB (RequestResponse)
  -> InvalidParameterValue.ClientContext; not JSON -> InvalidParameterValue.Param; a malformed name ->
  InvalidParameter.FunctionName. No ClientContext means the event `{}`.
- Event: answered at once with a FunctionRequestId; the handler runs on its own thread, and a failure
  (exception, or longer than the function's timeout) is retried `retries` times, then dead-lettered.
  Retries keep the same request id, as SCF's do.
- RequestResponse: run on the request's thread; RetMsg is the result as JSON. A failure gives
  InvokeResult 1 and SCF's error document `{"errorCode", "errorMessage", "stackTrace", "requestId",
  "statusCode"}` in both RetMsg and ErrMsg (Tencent's own client library reads RetMsg). Never retried.
- Log and MemUsage are always empty: the emulator does not capture output or measure memory.
- Faults: `add_fault(action="Invoke", trickle=0.2)` sends the next answer's status line and headers a
  byte every 0.2 s (a slow link; the request itself is handled as usual).
"""
from .emulator import ScfEmulator
from .invocations import Invocation
from .server import ApiCall

__all__ = ["ApiCall", "Invocation", "ScfEmulator"]
