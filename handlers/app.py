"""The function: event in, response out. Built once per container from validated settings."""
from __future__ import annotations

import time
from typing import Any, Mapping

from handlers import log
from handlers.auth import authenticate, check_allowed, configuration_problem, redacted_target
from handlers.callback import MalformedCallback, parse_callback
from handlers.ci import CiJobs, CiUnavailable, JobNotConfirmed, confirmed
from handlers.config import ConfigError, Settings
from handlers.cos import Clients, ObjectStore
from handlers.deadline import Deadline
from handlers.http import HttpError, HttpRequest, error_response, is_http_event, request_from_event, response
from handlers.models import Callback, JobResult
from handlers.process import Processor
from handlers.report import job_entry, needs_retry, object_entry


class App:
    def __init__(self, settings: Settings):
        log.setup(settings.log_level, secrets=(settings.secret_key, settings.token, *settings.callback_tokens))
        self.settings = settings
        self.refusal = configuration_problem(settings)
        if self.refusal is not None:
            log.error("configuration is invalid", variable=self.refusal.variable, reason=str(self.refusal))
        # Its own clients: CI look-ups then never wait for a connection behind object checks.
        self.ci_jobs = CiJobs(Clients(settings))
        self.store = ObjectStore(Clients(settings), settings)
        self.processor = Processor(settings, self.store)

    def close(self) -> None:
        self.processor.close()

    def handle(self, event: Any, context: Mapping[str, Any] | None) -> dict[str, Any]:
        started = time.monotonic()
        deadline = Deadline.from_context(context, started)
        log.bind_request(str((context or {}).get("request_id", "")))
        if not is_http_event(event):
            raise ValueError("unsupported event: expected a Function URL or API Gateway HTTP event")
        if self.refusal is not None:
            log.error("callback refused: the function is misconfigured", variable=self.refusal.variable)
            return misconfigured(self.refusal)
        request: HttpRequest | None = None
        try:
            request = request_from_event(event)
            return self.handle_http(request, deadline)
        except HttpError as exc:
            _log_rejection(exc, request, time.monotonic() - started)
            return error_response(exc)
        except Exception:  # a bug, not the caller's fault: say so, keep the details in the log
            log.error("unexpected failure", exc_info=True)
            return response(500, {"error": "unexpected failure; the function log has the details"})

    def handle_http(self, request: HttpRequest, deadline: Deadline) -> dict[str, Any]:
        started = time.monotonic()
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
        if self.settings.verify_with_ci:
            callback = self._confirmed_by_ci(callback, deadline)
        results = self.processor.run(callback, deadline)
        _log_results(results, time.monotonic() - started)
        body = {"jobs": [job_entry(r) for r in results]}
        if needs_retry(results):
            return response(503, body, {"Retry-After": str(self.settings.retry_after_seconds)})
        return response(200, body)

    def _confirmed_by_ci(self, callback: Callback, deadline: Deadline) -> Callback:
        try:
            return confirmed(callback, self.ci_jobs.describe, deadline, self.settings.cos_timeout)
        except MalformedCallback as exc:
            raise HttpError(400, f"malformed callback: {exc}") from None
        except JobNotConfirmed as exc:
            raise HttpError(403, f"CI does not confirm the callback: {exc}") from None
        except CiUnavailable as exc:
            raise HttpError(503, str(exc), {"Retry-After": str(self.settings.retry_after_seconds)}) from None


def _log_rejection(error: HttpError, request: HttpRequest | None, seconds: float) -> None:
    where = {} if request is None else {"method": request.method, "target": redacted_target(request),
                                        "sourceIp": request.source_ip}
    log.warning("callback rejected", status=error.status, reason=error.reason, **where,
                durationMs=round(seconds * 1000, 1))


def _log_results(results: list[JobResult], seconds: float) -> None:
    for result in results:
        for obj in result.objects:
            log.info("object checked", jobId=result.job.job_id, **object_entry(obj))
        log.info("job processed", jobId=result.job.job_id, tag=result.job.tag, state=result.job.state,
                 outcome=result.outcome.value, objects=len(result.objects),
                 durationMs=round(seconds * 1000, 1))


def create(env: Mapping[str, str]) -> App | ConfigError:
    """The app, or the configuration error every invocation should report."""
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        log.setup()
        log.error("configuration is invalid", variable=exc.variable, reason=str(exc))
        return exc
    return App(settings)


def misconfigured(error: ConfigError) -> dict[str, Any]:
    return response(500, {"error": f"the function is misconfigured: {error}", "setting": error.variable})
