"""The timer's tick: the reconciliation sweep (handlers/reconcile/) finds jobs whose callback never
arrived (or whose outputs still need a verdict), checks them, and hands what it cannot finish in
good time to asynchronous invocations of this function."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.deadline import Deadline
from handlers.intake.dispatch import Dispatcher, function_ref
from handlers.pipeline import Pipeline
from handlers.reconcile.settings import sweep_problem


def handle(pipeline: Pipeline, deadline: Deadline, request_id: str, context: Mapping[str, Any] | None = None,
           dispatcher: Dispatcher | None = None) -> dict[str, Any]:
    settings = pipeline.settings
    problem = sweep_problem(settings)
    if problem is not None:  # a tick that can do nothing fails, naming the setting: it is no success
        log.error("timer tick, but no bucket to reconcile", variable=problem.variable, reason=str(problem))
        raise problem
    # Only the timer needs these.
    from handlers.reconcile.fanout import hand_off_with
    from handlers.reconcile.jobs import job_runner, outside_allow_lists
    from handlers.reconcile.sweep import Sweep

    function = function_ref(context)
    hand_off = None
    if dispatcher is not None and function is not None and settings.reconcile_workers > 0:
        hand_off = hand_off_with(dispatcher, function, deadline, settings.cos_timeout, request_id)
    sweep = Sweep(settings, job_runner(pipeline, request_id), pipeline.ci_jobs.bound(deadline),
                  pipeline.store.bound(deadline), request_id, lambda job: outside_allow_lists(settings, job),
                  hand_off, settings.reconcile_workers)
    swept = sweep.run(deadline)
    report = swept.as_dict()
    log.at(log.WARNING if swept.troubled else log.INFO, "reconciliation sweep finished", **report)
    return {"sweep": report}
