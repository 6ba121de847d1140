"""A callback CI posts to the Function URL (or an API Gateway): authenticate, parse, then
either hand it to an asynchronous worker (DISPATCH=async, 202) or run the pipeline and answer
with the verdicts — 200, or 503 with Retry-After when something deserves another try."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.ci.confirm import CiUnavailable, JobNotConfirmed
from handlers.config import ConfigError, Settings
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.auth import authenticate, check_allowed, redacted_target
from handlers.intake.callback import MalformedCallback, parse_callback
from handlers.intake.dispatch import Dispatcher, can_process_inline, fits_async, function_ref, invoke_timeout
from handlers.intake.events import worker_payload
from handlers.intake.http import HttpError, HttpRequest, error_response, request_from_event, response
from handlers.operations.answer import job_entry, needs_retry
from handlers.pipeline import Pipeline


def misconfigured(error: ConfigError) -> dict[str, Any]:
    return response(500, {"error": f"the function is misconfigured: {error}", "setting": error.variable})


class HttpTrigger:
    def __init__(self, pipeline: Pipeline, dispatcher: Dispatcher):
        self.pipeline = pipeline
        self.settings: Settings = pipeline.settings
        self.dispatcher = dispatcher

    def handle(self, event: Any, context: Mapping[str, Any] | None, deadline: Deadline) -> dict[str, Any]:
        """Every answer is an HTTP response: a refusal is the caller's 4xx, a bug a 500."""
        started = time.monotonic()
        request: HttpRequest | None = None
        try:
            request = request_from_event(event)
            return self._answer(request, deadline, context)
        except HttpError as exc:
            _log_rejection(exc, request, time.monotonic() - started)
            return error_response(exc)
        except ConfigError as exc:  # a setting this callback needs and the function lacks: not the caller's fault
            log.error("callback rejected: the function is misconfigured", variable=exc.variable, reason=str(exc))
            return misconfigured(exc)
        except Exception:  # a bug, not the caller's fault: say so, keep the details in the log
            log.error("unexpected failure", exc_info=True)
            return response(500, {"error": "unexpected failure; the function log has the details"})

    def _answer(self, request: HttpRequest, deadline: Deadline, context: Mapping[str, Any] | None) -> dict[str, Any]:
        started = time.time()
        authenticate(request, self.settings)  # first: a caller without the token learns nothing more
        if request.method != "POST":
            raise HttpError(405, f"{request.method or 'this method'} is not allowed; CI posts callbacks",
                            {"Allow": "POST"})
        if len(request.body) > self.settings.max_body_bytes:
            raise HttpError(413, f"the body is {len(request.body)} bytes; MAX_BODY_BYTES is "
                                 f"{self.settings.max_body_bytes}")
        try:
            callback = parse_callback(request.body)
        except MalformedCallback as exc:
            raise HttpError(400, f"malformed callback: {exc}") from None
        check_allowed(callback, self.settings)
        request_id = str((context or {}).get("request_id", ""))
        if self.settings.dispatch == "async":
            accepted = self._dispatch(request.body, context, deadline, request_id)
            if accepted is not None:
                return accepted
        retry_after = {"Retry-After": str(self.settings.retry_after_seconds)}
        try:
            results, problems = self.pipeline.run(callback, deadline, request_id, started)
        except MalformedCallback as exc:
            raise HttpError(400, f"malformed callback: {exc}") from None
        except JobNotConfirmed as exc:
            raise HttpError(403, f"CI does not confirm the callback: {exc}") from None
        except CiUnavailable as exc:
            raise HttpError(503, str(exc), retry_after) from None
        body: dict[str, Any] = {"jobs": [job_entry(r) for r in results]}
        if problems:
            body["problems"] = problems
        if needs_retry(results) or problems:
            return response(503, body, retry_after)
        return response(200, body)

    def _dispatch(self, body: bytes, context: Mapping[str, Any] | None, deadline: Deadline,
                  request_id: str) -> dict[str, Any] | None:
        """202 once an asynchronous worker has the callback; None to process it inline instead;
        503 when SCF did not take it and too little time is left to process it here."""
        payload = worker_payload(body, request_id)
        function = function_ref(context)
        if function is None:
            log.warning("DISPATCH=async, but the function's own name is unknown: processing inline")
            return None
        if not fits_async(payload):
            log.warning("callback larger than SCF's 128 KB async limit: processing inline", bytes=len(body))
            return None
        timeout = invoke_timeout(deadline.remaining(), self.settings.cos_timeout)
        try:
            if timeout is None:
                raise TransientError("no time was left to ask SCF")
            invocation = self.dispatcher.invoke(function, payload, timeout)
        except (TransientError, StorageError) as exc:
            if can_process_inline(deadline.remaining()):
                log.error("async dispatch failed: processing inline", reason=str(exc))
                return None
            log.error("async dispatch failed, too little time left to process inline", reason=str(exc))
            return response(503, {"error": f"the callback could not be handed to an asynchronous worker ({exc}) "
                                           "and too little time is left to process it inline: send it again"},
                            {"Retry-After": str(self.settings.retry_after_seconds)})
        log.info("callback handed to an asynchronous worker", invocation=invocation, function=function.name)
        return response(202, {"accepted": True, "requestId": invocation})


def _log_rejection(error: HttpError, request: HttpRequest | None, seconds: float) -> None:
    where = {} if request is None else {"method": request.method, "target": redacted_target(request),
                                        "sourceIp": request.source_ip}
    log.warning("callback rejected", status=error.status, reason=error.reason, trigger="http", **where,
                durationMs=round(seconds * 1000, 1))
