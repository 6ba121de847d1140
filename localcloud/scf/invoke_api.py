"""The `Invoke` action (SCF API 2018-04-16): parameter checks, then a synchronous or asynchronous run."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .errors import ApiError, missing_parameter
from .functions import DEFAULT_NAMESPACE, LATEST, FunctionRegistry, check_function_name
from .invocations import EVENT, REQUEST_RESPONSE, Invoker, bill_duration_ms

API_VERSION = "2018-04-16"
SERVICE = "scf"

PARAMETERS = ("FunctionName", "InvocationType", "Qualifier", "ClientContext", "LogType", "Namespace", "RoutingKey")
# SCF's documented ClientContext limits.
MAX_CLIENT_CONTEXT_BYTES = {EVENT: 128 * 1024, REQUEST_RESPONSE: 6 * 1024 * 1024}
# The Invoke API takes at most 100 requests a second (https://tencentcloud.com/document/api/583/17243, and the
# quota page https://www.tencentcloud.com/zh/document/product/583/11637); past it, API 3.0's common error
# RequestLimitExceeded. Counted over the last second, for the whole emulator (SCF counts per account).
INVOKES_PER_SECOND = 100


class ScfApi:
    def __init__(self, functions: FunctionRegistry, invoker: Invoker):
        self._functions = functions
        self._invoker = invoker
        self.invokes_per_second = INVOKES_PER_SECOND  # tests may lower it, to reach it in a few calls
        self._recent: deque[float] = deque()  # when the Invokes of the last second arrived
        self._lock = threading.Lock()
        self.throttled = 0  # Invokes refused for the rate

    def _admit(self) -> None:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.invokes_per_second:
                self.throttled += 1
                raise ApiError("RequestLimitExceeded",
                               f"Invoke takes at most {self.invokes_per_second} requests a second.")
            self._recent.append(now)

    def handle(self, action: str, params: Mapping[str, Any], region: str) -> dict:
        """The `Response` object without its RequestId."""
        if action != "Invoke":
            raise ApiError("InvalidAction", f"The action `{action}` is not valid: the SCF emulator implements Invoke.")
        self._admit()
        return self.invoke(params, region)

    def invoke(self, params: Mapping[str, Any], region: str) -> dict:
        # The SDK drops unset fields, but hand-built calls may send them as null.
        params = {key: value for key, value in params.items() if value is not None}
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise ApiError("UnknownParameter", f"The parameter `{unknown[0]}` is not recognized.")
        for key, value in params.items():
            if not isinstance(value, str):
                raise ApiError("InvalidParameter", f"The value of parameter `{key}` must be a string.")
        if "FunctionName" not in params:
            raise missing_parameter("FunctionName")
        check_function_name(params["FunctionName"])
        invocation_type = params.get("InvocationType") or REQUEST_RESPONSE
        if invocation_type not in MAX_CLIENT_CONTEXT_BYTES:
            raise ApiError("InvalidParameterValue",
                           f"InvocationType `{invocation_type}` is invalid: use {REQUEST_RESPONSE} or {EVENT}.")
        event_json = params.get("ClientContext")
        if event_json is not None:
            _check_client_context(event_json, invocation_type)

        function = self._functions.find(params["FunctionName"], params.get("Namespace") or DEFAULT_NAMESPACE,
                                        params.get("Qualifier") or LATEST, region)
        if invocation_type == EVENT:
            record = self._invoker.invoke_async(function, event_json)
            return {"Result": _result(record.request_id, invoke_result=0)}
        record, outcome = self._invoker.invoke_sync(function, event_json)
        return {"Result": _result(
            record.request_id, invoke_result=0 if outcome.ok else 1, ret_msg=outcome.ret_msg,
            err_msg="" if outcome.ok else outcome.ret_msg, duration_ms=outcome.duration_ms,
        )}


def _check_client_context(event_json: str, invocation_type: str) -> None:
    size, limit = len(event_json.encode()), MAX_CLIENT_CONTEXT_BYTES[invocation_type]
    if size > limit:
        raise ApiError("InvalidParameterValue.ClientContext",
                       f"ClientContext is {size} bytes; a {invocation_type} invocation accepts at most {limit}.")
    try:
        json.loads(event_json)
    except ValueError as error:
        raise ApiError("InvalidParameterValue.Param", f"ClientContext is not valid JSON: {error}.") from None


def _result(request_id: str, invoke_result: int, ret_msg: str = "", err_msg: str = "",
            duration_ms: float | None = None) -> dict:
    """Every field of the SDK's `Result` model; an asynchronous call leaves the run's figures empty."""
    return {
        "FunctionRequestId": request_id,
        "InvokeResult": invoke_result,
        "RetMsg": ret_msg,
        "ErrMsg": err_msg,
        "Log": "",
        "MemUsage": 0,
        "Duration": 0 if duration_ms is None else round(duration_ms, 3),
        "BillDuration": 0 if duration_ms is None else bill_duration_ms(duration_ms),
    }
