"""The function: event in, response out. Built once per container from validated settings.

The app only routes: each trigger (`handlers/triggers/`: HTTP, worker, queue, timer) turns
its event into callbacks for the one pipeline (`handlers/pipeline.py`: confirm with CI →
expand a workflow → verify and act → notify → audit report) and its results into the answer
that trigger expects.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.checking.reads import ContentReader
from handlers.ci.jobs import CiJobs
from handlers.config import ConfigError, Settings
from handlers.deadline import Deadline
from handlers.intake.auth import configuration_problem
from handlers.intake.dispatch import Dispatcher
from handlers.intake.events import WORKER_KEY, Kind, kind_of
from handlers.pipeline import Pipeline, Refused, RetryLater
from handlers.process import Processor
from handlers.settings import deprecations, from_env
from handlers.storage.clients import Clients
from handlers.storage.cos import ObjectStore
from handlers.triggers import queue, timer, worker
from handlers.triggers.http import HttpTrigger, misconfigured

__all__ = ["App", "Refused", "RetryLater", "create", "misconfigured"]


class App:
    def __init__(self, settings: Settings):
        log.setup(settings.log_level, secrets=(settings.secret_key, settings.token, *settings.callback_tokens))
        self.settings = settings
        self.refusal = configuration_problem(settings)
        if self.refusal is not None:
            log.error("configuration is invalid", variable=self.refusal.variable, reason=str(self.refusal))
        # CI look-ups get clients of their own: they never wait for a connection behind object checks.
        clients = Clients(settings)
        self.store = ObjectStore(clients, settings)
        # Content reads share the store's clients; the speed they learn is the container's.
        self.reader = ContentReader(clients, settings)
        self.pipeline = Pipeline(settings, CiJobs(Clients(settings)), self.store,
                                 Processor(settings, self.store, self.reader))
        self.http = HttpTrigger(self.pipeline, Dispatcher(settings))

    def close(self) -> None:
        self.pipeline.processor.close()

    def handle(self, event: Any, context: Mapping[str, Any] | None) -> dict[str, Any]:
        deadline = Deadline.from_context(context, time.monotonic())
        request_id = str((context or {}).get("request_id", ""))
        log.bind_request(request_id)
        kind = kind_of(event)
        if self.refusal is not None:
            if kind is Kind.HTTP:
                log.error("callback rejected: the function is misconfigured", variable=self.refusal.variable)
                return misconfigured(self.refusal)
            raise RuntimeError(f"the function is misconfigured: {self.refusal}")
        if kind is Kind.HTTP:
            return self.http.handle(event, context, deadline)
        if kind is Kind.WORKER:
            return worker.handle(self.pipeline, event[WORKER_KEY], deadline, request_id, context, self.http.dispatcher)
        if kind is Kind.QUEUE:
            return queue.handle(self.pipeline, event, deadline, request_id)
        if kind is Kind.TIMER:
            return timer.handle(self.pipeline, deadline, request_id, context, self.http.dispatcher)
        raise ValueError("unsupported event: expected an HTTP (Function URL / API Gateway), CMQ, timer "
                         "or worker event")


def create(env: Mapping[str, str]) -> App | ConfigError:
    """The app, or the configuration error every invocation should report."""
    try:
        settings = from_env(env)
    except ConfigError as exc:
        log.setup()
        log.error("configuration is invalid", variable=exc.variable, reason=str(exc))
        return exc
    app = App(settings)
    for warning in deprecations(env):  # once per container: the environment is read once
        log.warning(warning)
    return app


