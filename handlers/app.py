"""The function: event in, response out. Built once per container from validated settings.

Four kinds of invocation share one pipeline (CI cross-check → workflow expansion →
verification and actions → audit report):
- HTTP: CI posts a callback; answered with the verdicts, or 202 when DISPATCH=async.
- Worker: the asynchronous twin of an HTTP call; raises on transient failure so SCF retries.
- Queue: CMQ/TDMQ-delivered callbacks; raises when any message needs another try.
- Timer: the reconciliation sweep.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.auth import authenticate, check_allowed, configuration_problem, redacted_target
from handlers.callback import MalformedCallback, parse_callback
from handlers.ci import CiJobs, CiUnavailable, JobNotConfirmed, confirmed
from handlers.config import ANY_BUCKET, ConfigError, Settings
from handlers.cos import Clients, ObjectStore
from handlers.deadline import Deadline
from handlers.dispatch import Dispatcher, can_process_inline, fits_async, function_ref, invoke_timeout
from handlers.errors import StorageError, TransientError
from handlers.events import WORKER_KEY, Kind, kind_of, queue_bodies, worker_payload
from handlers.http import HttpError, HttpRequest, error_response, request_from_event, response
from handlers.models import Callback, JobResult
from handlers.process import Processor
from handlers.report import job_entry, needs_retry, object_entry

# Workflow expansion, audit reports and the timer's sweep are imported where they are used:
# most invocations need none of them, and every module imported here lengthens a cold start.


class RetryLater(Exception):
    """Raised from a worker or queue invocation so that SCF delivers it again."""


class Refused(Exception):
    """A callback that must not be acted on; retrying would not change that."""


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
        self.dispatcher = Dispatcher(settings)

    def close(self) -> None:
        self.processor.close()

    def handle(self, event: Any, context: Mapping[str, Any] | None) -> dict[str, Any]:
        started = time.monotonic()
        deadline = Deadline.from_context(context, started)
        request_id = str((context or {}).get("request_id", ""))
        log.bind_request(request_id)
        kind = kind_of(event)
        if kind is Kind.HTTP:
            return self._http(event, context, deadline, started)
        if self.refusal is not None:
            raise RuntimeError(f"the function is misconfigured: {self.refusal}")
        if kind is Kind.WORKER:
            return self.handle_worker(event[WORKER_KEY], deadline, request_id)
        if kind is Kind.QUEUE:
            return self.handle_queue(event, deadline, request_id)
        if kind is Kind.TIMER:
            return self.handle_timer(deadline, request_id)
        raise ValueError("unsupported event: expected an HTTP (Function URL / API Gateway), CMQ, timer "
                         "or worker event")

    # --- HTTP -----------------------------------------------------------------------------

    def _http(self, event: Any, context: Mapping[str, Any] | None, deadline: Deadline,
              started: float) -> dict[str, Any]:
        if self.refusal is not None:
            log.error("callback refused: the function is misconfigured", variable=self.refusal.variable)
            return misconfigured(self.refusal)
        request: HttpRequest | None = None
        try:
            request = request_from_event(event)
            return self.handle_http(request, deadline, context)
        except HttpError as exc:
            _log_rejection(exc, request, time.monotonic() - started)
            return error_response(exc)
        except Exception:  # a bug, not the caller's fault: say so, keep the details in the log
            log.error("unexpected failure", exc_info=True)
            return response(500, {"error": "unexpected failure; the function log has the details"})

    def handle_http(self, request: HttpRequest, deadline: Deadline,
                    context: Mapping[str, Any] | None = None) -> dict[str, Any]:
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
        if self.settings.dispatch == "async":
            accepted = self._dispatch(request.body, context, deadline)
            if accepted is not None:
                return accepted
        retry_after = {"Retry-After": str(self.settings.retry_after_seconds)}
        try:
            results, problems = self.verify(callback, deadline, str((context or {}).get("request_id", "")),
                                            started)
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

    def _dispatch(self, body: bytes, context: Mapping[str, Any] | None,
                  deadline: Deadline) -> dict[str, Any] | None:
        """202 once an asynchronous worker has the callback; None to process it inline instead;
        503 when SCF did not take it and too little time is left to process it here."""
        request_id = str((context or {}).get("request_id", ""))
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

    # --- the shared pipeline ----------------------------------------------------------------

    def verify(self, callback: Callback, deadline: Deadline, request_id: str,
               started: float) -> tuple[list[JobResult], list[str]]:
        """Cross-check with CI, expand a workflow, verify and act, write the audit reports.

        Returns the results and the audit problems. Raises MalformedCallback, JobNotConfirmed,
        CiUnavailable, or HttpError (403) when a workflow's jobs name a bucket not allowed."""
        ci = self.ci_jobs.bound(deadline)
        finished: list[JobResult] = []
        if any(job.tag == "FileHashCode" for job in callback.jobs_detail):
            from handlers.serverhash import finish  # VERIFY_MODE=server: CI hashed an output
            finished, callback = finish(callback, self.processor.server_hash().hashing, self.processor.finish_hashed,
                                        self.settings, deadline)
        if self.settings.verify_with_ci:
            callback = confirmed(callback, ci.describe, deadline)
            if self.settings.report_prefix:
                from handlers.audit import confirmed_for_reports
                callback = confirmed_for_reports(callback, ci.describe, self.settings.report_prefix, deadline)
            check_allowed(callback, self.settings)  # CI's account of a job names its own buckets
        if callback.workflow_execution is not None:
            from handlers.workflow import expand
            candidates = tuple(b for b in self.settings.allowed_buckets if b != ANY_BUCKET)
            callback = expand(callback, ci.describe, self.settings.region, deadline, candidates)
            check_allowed(callback, self.settings)  # the jobs CI reports for it name their own buckets
        results = finished + self.processor.run(callback, deadline)
        notified = {}
        if self.settings.notify_urls:
            from handlers.notify import notify
            notified = notify(results, self.settings, self.store.bound(deadline), deadline, request_id)
        _log_results(results, time.time() - started, notified)
        problems = []
        if self.settings.report_prefix:
            from handlers.audit import write_reports
            problems = write_reports(results, self.settings.report_prefix, self.store.bound(deadline), deadline,
                                     request_id, started)
            for problem in problems:
                log.error("audit report not written", reason=problem)
        return results, problems

    def _verify_quietly(self, body: bytes, deadline: Deadline, request_id: str) -> list[JobResult]:
        """The pipeline for invocations nobody waits on: refusals are logged and dropped,
        transient failures raise RetryLater."""
        try:
            callback = parse_callback(body)
            check_allowed(callback, self.settings)
            results, problems = self.verify(callback, deadline, request_id, time.time())
        except (MalformedCallback, JobNotConfirmed, HttpError) as exc:
            reason = exc.reason if isinstance(exc, HttpError) else str(exc)
            log.warning("callback refused", reason=reason)
            raise Refused(reason) from None
        except CiUnavailable as exc:
            raise RetryLater(str(exc)) from None
        if needs_retry(results) or problems:
            raise RetryLater("; ".join(problems) or "some objects need another try (see the log)")
        return results

    # --- worker, queue, timer -----------------------------------------------------------------

    def handle_worker(self, payload: Mapping[str, Any], deadline: Deadline, request_id: str) -> dict[str, Any]:
        body = payload.get("body")
        if not isinstance(body, str):
            log.warning("worker payload without a callback body: dropped")
            return {"refused": "no callback body"}
        try:
            results = self._verify_quietly(body.encode("utf-8"), deadline, request_id)
        except Refused as exc:
            return {"refused": str(exc)}
        return {"jobs": [job_entry(r) for r in results]}

    def handle_queue(self, event: dict[str, Any], deadline: Deadline, request_id: str) -> dict[str, Any]:
        outcomes, retry = [], []
        for message_id, body in queue_bodies(event):
            try:
                results = self._verify_quietly(body, deadline, request_id)
                outcomes.append({"msgId": message_id, "jobs": [job_entry(r) for r in results]})
            except Refused as exc:
                outcomes.append({"msgId": message_id, "refused": str(exc)})
            except RetryLater as exc:
                retry.append(f"{message_id}: {exc}")
        if retry:
            # The whole batch comes back; the messages already done are idempotent replays.
            raise RetryLater("messages to deliver again: " + "; ".join(retry))
        return {"messages": outcomes}

    def handle_timer(self, deadline: Deadline, request_id: str) -> dict[str, Any]:
        if not self.settings.reconcile_buckets:
            log.warning("timer tick, but no bucket to reconcile: set RECONCILE_BUCKETS (or ALLOWED_BUCKETS "
                        "and DEFAULT_REGION)")
            return {"sweep": "nothing to reconcile"}
        from handlers.sweep import Sweep
        sweep = Sweep(self.settings, lambda callback, d: self._sweep_jobs(callback, d, request_id),
                      self.ci_jobs.bound(deadline), self.store.bound(deadline))
        swept = sweep.run(deadline)
        report = swept.as_dict()
        troubled = bool(swept.errors or swept.unreadable) or needs_retry(swept.checked)
        log.at(log.WARNING if troubled else log.INFO, "reconciliation sweep finished", **report)
        return {"sweep": report}

    def _sweep_jobs(self, callback: Callback, deadline: Deadline, request_id: str) -> list[JobResult]:
        try:
            check_allowed(callback, self.settings)
        except HttpError as exc:
            log.warning("sweep skipped a job outside the allow-lists", reason=exc.reason)
            return []
        return self.verify(callback, deadline, request_id, time.time())[0]


def _log_rejection(error: HttpError, request: HttpRequest | None, seconds: float) -> None:
    where = {} if request is None else {"method": request.method, "target": redacted_target(request),
                                        "sourceIp": request.source_ip}
    log.warning("callback rejected", status=error.status, reason=error.reason, **where,
                durationMs=round(seconds * 1000, 1))


def _log_results(results: list[JobResult], seconds: float,
                 notified: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """`object checked` at the level its verdict calls for (so that a CLS alarm can key on it),
    `job processed` with the count per verdict as flat numbers (SCF turns a JSON line's first
    level into CLS fields and drops nested values) and what became of its notification."""
    for result in results:
        counts = dict.fromkeys(log.VERDICT_COUNTS, 0)
        for obj in result.objects:
            counts[obj.check.verdict.value] = counts.get(obj.check.verdict.value, 0) + 1
            log.at(log.verdict_level(obj.check.verdict.value, failed_action=bool(obj.error)), "object checked",
                   jobId=result.job.job_id, **object_entry(obj))
        log.at(log.outcome_level(result.outcome.value), "job processed", jobId=result.job.job_id,
               tag=result.job.tag, state=result.job.state, outcome=result.outcome.value,
               objects=len(result.objects), **counts, **(notified or {}).get(result.job.job_id, {}),
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
