"""Running handlers: synchronous calls, asynchronous ones with SCF's retry policy, and their records."""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, replace
from typing import Any

from .functions import Function

logger = logging.getLogger("localcloud.scf")

EVENT = "Event"
REQUEST_RESPONSE = "RequestResponse"

# Status codes of SCF's function error answers.
_USER_CODE_ERROR = 430
_TIMEOUT = 433


@dataclass(frozen=True)
class Invocation:
    """One Invoke call as the emulator saw it.

    status: "queued" | "running" | "succeeded" | "failed" | "dead-lettered". An asynchronous invocation
    is "failed" between an attempt that failed and its retry, "dead-lettered" once no retry is left;
    a synchronous one is never retried, so "failed" is final for it.
    """

    request_id: str  # the FunctionRequestId, also context["request_id"]
    function_name: str
    namespace: str
    qualifier: str
    invocation_type: str
    payload: Any  # the parsed ClientContext
    status: str
    attempts: int = 0
    result: Any = None  # what the handler returned
    error: str | None = None  # traceback of the last failed attempt
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Outcome:
    """One attempt; `ret_msg` is the result as JSON or, on failure, SCF's error document."""

    ok: bool
    result: Any
    ret_msg: str
    error: str | None
    duration_ms: float


class Invoker:
    def __init__(self, region: str):
        self._region = region
        self._records: dict[str, Invocation] = {}
        self._unfinished: set[str] = set()
        self._changed = threading.Condition()
        self._closing = threading.Event()

    # ------------------------------------------------------------- invoking

    def invoke_sync(self, function: Function, event_json: str | None) -> tuple[Invocation, Outcome]:
        record = self._add(function, REQUEST_RESPONSE, event_json, status="running", attempts=1)
        outcome = self._attempt(function, record.request_id, event_json)
        finished = self._finish(record.request_id, outcome, "succeeded" if outcome.ok else "failed")
        return finished, outcome

    def invoke_async(self, function: Function, event_json: str | None) -> Invocation:
        record = self._add(function, EVENT, event_json, status="queued", attempts=0)
        threading.Thread(
            target=self._run_with_retries, args=(function, record.request_id, event_json),
            name=f"scf-{function.name}-{record.request_id[:8]}", daemon=True,
        ).start()
        return record

    def _run_with_retries(self, function: Function, request_id: str, event_json: str | None) -> None:
        for attempt in range(1, function.retries + 2):
            self._update(request_id, status="running", attempts=attempt)
            outcome = self._attempt(function, request_id, event_json)
            if outcome.ok:
                self._finish(request_id, outcome, "succeeded")
                return
            if attempt > function.retries:
                logger.warning("SCF emulator: %s %s dead-lettered after %d attempt(s)",
                               function.name, request_id, attempt)
                self._finish(request_id, outcome, "dead-lettered")
                return
            self._update(request_id, status="failed", error=outcome.error)
            if self._closing.wait(function.retry_delay):
                self._finish(request_id, outcome, "failed")  # stopped before the retry: nothing left to run it
                return

    def _attempt(self, function: Function, request_id: str, event_json: str | None) -> Outcome:
        event = {} if event_json is None else json.loads(event_json)  # a fresh copy for every attempt
        context = function.context(request_id, self._region)
        started = time.monotonic()
        try:
            result = function.handler(event, context)
            ret_msg = json.dumps(result, ensure_ascii=False)
        except BaseException as exc:
            elapsed_ms = (time.monotonic() - started) * 1000
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            logger.info("SCF emulator: %s %s raised %s", function.name, request_id, message)
            return _failure(request_id, message, trace, _USER_CODE_ERROR, elapsed_ms)
        elapsed_ms = (time.monotonic() - started) * 1000
        if elapsed_ms > function.timeout * 1000:
            message = f"Invoking task timed out after {function.timeout:g} seconds"
            return _failure(request_id, message, message, _TIMEOUT, elapsed_ms)
        return Outcome(ok=True, result=result, ret_msg=ret_msg, error=None, duration_ms=elapsed_ms)

    # -------------------------------------------------------------- records

    def _add(self, function: Function, invocation_type: str, event_json: str | None, **state: Any) -> Invocation:
        now = time.time()
        record = Invocation(
            request_id=str(uuid.uuid4()), function_name=function.name, namespace=function.namespace,
            qualifier=function.qualifier, invocation_type=invocation_type,
            payload={} if event_json is None else json.loads(event_json),
            queued_at=now, started_at=now if state["status"] == "running" else None, **state,
        )
        with self._changed:
            self._records[record.request_id] = record
            self._unfinished.add(record.request_id)
        return record

    def _update(self, request_id: str, **changes: Any) -> None:
        with self._changed:
            record = self._records[request_id]
            if changes.get("status") == "running" and record.started_at is None:
                changes["started_at"] = time.time()
            self._records[request_id] = replace(record, **changes)
            self._changed.notify_all()

    def _finish(self, request_id: str, outcome: Outcome, status: str) -> Invocation:
        with self._changed:
            record = replace(self._records[request_id], status=status, result=outcome.result,
                             error=outcome.error, finished_at=time.time())
            self._records[request_id] = record
            self._unfinished.discard(request_id)
            self._changed.notify_all()
        return record

    def records(self) -> list[Invocation]:
        with self._changed:
            return list(self._records.values())

    def find(self, request_id: str) -> Invocation | None:
        with self._changed:
            return self._records.get(request_id)

    def wait_idle(self, timeout: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: not self._unfinished, timeout):
                busy = ", ".join(f"{self._records[i].function_name}/{i}" for i in sorted(self._unfinished))
                raise TimeoutError(f"SCF emulator: invocations still unfinished after {timeout:g} s: {busy}")

    def clear(self) -> None:
        """Forget finished invocations; unfinished ones keep running and keep their records."""
        with self._changed:
            self._records = {i: r for i, r in self._records.items() if i in self._unfinished}

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        self._closing.clear()

    def close(self) -> None:
        """Abandon pending retries; attempts already running finish on their own."""
        self._closing.set()


def _failure(request_id: str, message: str, trace: str, status_code: int, elapsed_ms: float) -> Outcome:
    document = {"errorCode": -1, "errorMessage": message, "stackTrace": trace,
                "requestId": request_id, "statusCode": status_code}
    return Outcome(ok=False, result=None, ret_msg=json.dumps(document, ensure_ascii=False), error=trace,
                   duration_ms=elapsed_ms)


def bill_duration_ms(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms))
