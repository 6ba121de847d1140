"""Hand a callback to an asynchronous invocation of this same function (DISPATCH=async).

The HTTP path answers within milliseconds; the worker may then hash gigabytes for minutes,
and SCF retries it on failure (then dead-letters it), which a Function URL call never gets.
The SCF SDK is imported here only, so the hot path of inline mode never pays for it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from handlers import exchange
from handlers.config import Settings
from handlers.errors import StorageError, TransientError

ASYNC_PAYLOAD_LIMIT = 128 * 1024  # SCF's limit for an asynchronous invocation's event
# Processing a callback inline (CI look-up, HEAD beside the tag read, tag write) takes a few
# round trips; with less than this left it would only be cut off half-way.
MIN_INLINE_SECONDS = 2.0
MIN_INVOKE_SECONDS = 1  # whole seconds: one SDK client per timeout in use


def invoke_timeout(remaining: float, limit: float) -> int | None:
    """Seconds the Invoke may wait (pure): at most half of the time left, so that inline
    processing keeps the other half when SCF does not take the callback; None when even the
    Invoke cannot be given a second."""
    seconds = int(min(limit, remaining / 2))
    return seconds if seconds >= MIN_INVOKE_SECONDS else None


def can_process_inline(remaining: float) -> bool:
    return remaining >= MIN_INLINE_SECONDS


@dataclass(frozen=True)
class FunctionRef:
    name: str
    namespace: str
    qualifier: str


def function_ref(context: Mapping[str, Any] | None, env: Mapping[str, str] = os.environ) -> FunctionRef | None:
    """This function's own name, from the SCF context (or SCF's environment variables)."""
    context = context or {}
    name = context.get("function_name") or env.get("SCF_FUNCTIONNAME")
    if not name:
        return None
    namespace = context.get("namespace") or env.get("SCF_NAMESPACE") or "default"
    qualifier = context.get("function_version") or env.get("SCF_FUNCTIONVERSION") or "$LATEST"
    return FunctionRef(str(name), str(namespace), str(qualifier))


def fits_async(payload: Mapping[str, Any]) -> bool:
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8")) <= ASYNC_PAYLOAD_LIMIT


class Dispatcher:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._clients: dict[int, Any] = {}

    def invoke(self, function: FunctionRef, payload: Mapping[str, Any], timeout: int) -> str:
        """Queue an asynchronous invocation, waiting at most `timeout` seconds for the whole
        exchange; returns SCF's request id for it."""
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.scf.v20180416 import models

        request = models.InvokeRequest()
        request.FunctionName = function.name
        request.Namespace = function.namespace
        request.Qualifier = function.qualifier
        request.InvocationType = "Event"
        request.ClientContext = json.dumps(payload, ensure_ascii=False)
        try:
            result = self._scf(timeout).Invoke(request).Result
        except TencentCloudSDKException as exc:
            code = exc.get_code() or ""
            # Throttling, internal errors and the network are worth another try; a bad
            # signature, an unknown function or a refused parameter are not.
            if code.startswith(("InternalError", "RequestLimitExceeded", "ResourceUnavailable",
                                "ClientNetworkError", "ServerNetworkError", "FailedOperation")):
                raise TransientError(f"SCF Invoke: {code} {exc.get_message()}") from None
            raise StorageError(f"SCF Invoke: {code} {exc.get_message()}") from None
        return str(result.FunctionRequestId)

    def _scf(self, timeout: int) -> Any:
        # The SDK fixes a client's timeout when it is built: one client per timeout in use.
        client = self._clients.get(timeout)
        if client is None:
            from tencentcloud.common import credential
            from tencentcloud.common.profile.client_profile import ClientProfile
            from tencentcloud.common.profile.http_profile import HttpProfile
            from tencentcloud.scf.v20180416 import scf_client

            s = self._settings
            local = s.scf_endpoint
            # The profile copies `protocol` into `scheme` when built: give both at construction.
            http = HttpProfile(reqTimeout=timeout,
                               endpoint=f"{local.host}:{local.port}" if local else None,
                               protocol=local.scheme if local else "https")
            cred = credential.Credential(s.secret_id, s.secret_key, s.token)
            client = scf_client.ScfClient(cred, s.region, ClientProfile(httpProfile=http))
            _bound_exchanges(client)
            self._clients[timeout] = client
        return client


def _bound_exchanges(client: Any) -> None:
    """The SDK sends through a requests.Session of its own (tencentcloud/common/http/request.py:
    `client.request.conn._session`, where its own pre-connecting adapter is mounted) with its
    timeout per socket read, and reads the answer after the send returns. Our adapter on that
    session bounds the whole exchange, the answer read within it. Nothing is sent unbounded: an
    SDK that no longer has that session fails the Invoke, and the callback is processed inline."""
    session = getattr(getattr(getattr(client, "request", None), "conn", None), "_session", None)
    if not isinstance(session, requests.Session):
        raise StorageError("SCF Invoke: tencentcloud-sdk-python sends through no requests.Session this "
                           "function can bound; not sent")
    exchange.mount(session, exchange.BoundedAdapter(read_body=True))
