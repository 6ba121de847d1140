"""The backfill: months of outputs nobody verified, checked exactly as the sweep checks its window.

    python3 dev.py reconcile --bucket B --since 30d [--until T] [--queue Q ...] [--tags T1,T2] [--region R]

lists CI's jobs of the period in each of the bucket's media queues (or the --queue ones) and tags
(--tags, else RECONCILE_TAGS), checks those not settled with the sweep's own machinery
(handlers/reconcile/sweep.py), shows its progress on stderr, and ends with the report command's summary
(handlers/operations/report_command/). It keeps a checkpoint per list (`backfill/<QueueId>/<Tag>.checkpoint`, beside the
sweep's), so an interrupted run resumes where it stopped when run again with the same --since (or a
later one). Run here, it checks the jobs itself, CONCURRENCY at a time; for volumes that need SCF's
fan-out, send the deployed function the same order as an event (`backfill_order`), and it hands
batches to asynchronous invocations of itself and, when its time runs out, invokes itself again to
go on (at most MAX_ROUNDS times).

CI's job list (DescribeMediaJobs, https://cloud.tencent.com/document/api/460/84766, and
https://cloud.tencent.com/document/api/436/49203) documents: `queueId` required, `size` at most 100,
creation-time bounds strict and to the second. It documents no longest period per request and no
retention (how far back CI keeps jobs): the period is listed a day at a time (listing.LIST_SPAN), and a
period older than CI keeps simply lists nothing, which the progress shows per round.
Configuration is the function's (the same environment variables); without ALLOWED_BUCKETS here, the
--bucket is the one allowed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from handlers import log
from handlers.config import ANY_BUCKET, Settings
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.dispatch import Dispatcher, function_ref
from handlers.intake.events import WORKER_KEY
from handlers.pipeline import Pipeline, Refused
from handlers.reconcile.listing import CI_TIME, Period
from handlers.reconcile.report import SweepReport
from handlers.reconcile.sweep import Sweep

ROUND_SECONDS = 120  # a local run's round: its checkpoint is written at least this often per list
MAX_ROUNDS = 200  # an event's continuations, and a local run's rounds without progress end it sooner
NEXT_ROUND_SECONDS = 3.0  # kept back from a round to invoke the next
FORMATS = ("table", "json", "csv")


def period_of(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of a period given as `--since 30d` or a date, and an optional end (pure).
    Raises ValueError naming the mistake."""
    from handlers.operations.report_command.summarise import since_cutoff  # the report command's own reading of --since
    start = since_cutoff(since, now)
    end = since_cutoff(until, now) if until else now + timedelta(seconds=1)
    if start >= end:
        raise ValueError(f"--since {since} is not before the end of the period")
    return start.astimezone(timezone.utc), min(end, now + timedelta(seconds=1)).astimezone(timezone.utc)


def backfill_settings(settings: Settings, bucket: str, region: str, queues: Sequence[str], tags: Sequence[str],
                      allow_bucket: bool) -> Settings:
    """The function's settings, sweeping just this bucket (its markers written too)."""
    allowed = settings.allowed_buckets
    if allow_bucket and not allowed:
        allowed = frozenset({bucket})
    return replace(settings, reconcile_buckets=((bucket, region),),
                   reconcile_tags=tuple(tags) or settings.reconcile_tags, allowed_buckets=allowed,
                   reconcile_queues=tuple((bucket, q) for q in queues) or tuple(
                       (b, q) for b, q in settings.reconcile_queues if b in ("", bucket)))


def one_round(pipeline: Pipeline, period: Period, deadline: Deadline, me: str,
              hand_off: Any = None) -> SweepReport:
    from handlers.reconcile.jobs import job_runner, outside_allow_lists
    settings = pipeline.settings
    sweep = Sweep(settings, job_runner(pipeline, me), pipeline.ci_jobs.bound(deadline), pipeline.store.bound(deadline),
                  me, lambda job: outside_allow_lists(settings, job), hand_off,
                  settings.reconcile_workers if hand_off is not None else 0)
    return sweep.run_period(period, deadline)


def progress_line(number: int, report: SweepReport) -> str:
    return (f"round {number}: listed {report.listed}, already done {report.settled_before + report.already_done}, "
            f"checked {report.checked} ({', '.join(f'{k} {v}' for k, v in sorted(report.outcomes.items())) or '-'}), "
            f"handed off {report.handed_off}, left {report.left_unchecked}, lists not finished {len(report.unlisted)}"
            + (f", errors {len(report.errors)} (first: {report.errors[0]})" if report.errors else ""))


def finished(report: SweepReport) -> bool:
    return not report.stopped_early and not report.busy


# --- the deployed function: an event ------------------------------------------------------------

def backfill_order(bucket: str, since: str, until: str | None = None, queues: Sequence[str] = (),
                   tags: Sequence[str] = (), region: str = "", round_number: int = 1) -> dict[str, Any]:
    """The event that runs a backfill in the deployed function (tccli scf Invoke --ClientContext ...)."""
    order: dict[str, Any] = {"bucket": bucket, "since": since, "queues": list(queues), "tags": list(tags),
                             "round": round_number}
    if until:
        order["until"] = until
    if region:
        order["region"] = region
    return {WORKER_KEY: {"version": 1, "backfill": order}}


def handle_event(pipeline: Pipeline, order: Mapping[str, Any], deadline: Deadline, request_id: str,
                 context: Mapping[str, Any] | None, dispatcher: Dispatcher | None) -> dict[str, Any]:
    settings = pipeline.settings
    now = datetime.now(timezone.utc)
    try:
        bucket, region, period, round_number = _read_order(order, settings, now)
    except (Refused, ValueError) as exc:
        log.warning("backfill refused", reason=str(exc))
        return {"refused": str(exc)}
    queues = [q for q in order.get("queues") or [] if isinstance(q, str)]
    tags = [t for t in order.get("tags") or [] if isinstance(t, str)]
    scoped = Pipeline(backfill_settings(settings, bucket, region, queues, tags, allow_bucket=False),
                      pipeline.ci_jobs, pipeline.store, pipeline.processor)
    function = function_ref(context)
    hand_off = None
    if dispatcher is not None and function is not None and settings.reconcile_workers > 0:
        from handlers.reconcile.fanout import hand_off_with
        hand_off = hand_off_with(dispatcher, function, deadline, settings.cos_timeout, request_id)
    # The round ends early enough to invoke the next one.
    budget = deadline.budget or deadline.remaining()
    round_deadline = Deadline(deadline.at - min(NEXT_ROUND_SECONDS, budget / 4), budget)
    report = one_round(scoped, period, round_deadline, request_id, hand_off)
    continued = None
    if not finished(report) and dispatcher is not None and function is not None and round_number < MAX_ROUNDS:
        fixed = backfill_order(bucket, period.since.strftime(CI_TIME), period.end.strftime(CI_TIME), queues, tags,
                               region, round_number + 1)
        timeout = int(min(settings.cos_timeout, deadline.remaining() - 0.5))
        try:
            if timeout < 1:
                raise TransientError("no time was left to ask SCF")
            continued = dispatcher.invoke(function, fixed, timeout)
        except (TransientError, StorageError) as exc:
            report.errors.append(f"the backfill could not invoke its next round ({exc}): send the order again "
                                 "to resume from its checkpoint")
    summary = report.as_dict()
    log.at(log.WARNING if report.troubled and continued is None else log.INFO, "backfill round finished",
           bucket=bucket, round=round_number, since=period.since.strftime(CI_TIME), until=period.end.strftime(CI_TIME),
           continuedBy=continued or "", finished=finished(report), **summary)
    return {"backfill": summary, "round": round_number, "finished": finished(report), "continuedBy": continued}


def _read_order(order: Mapping[str, Any], settings: Settings, now: datetime) -> tuple[str, str, Period, int]:
    bucket, since = order.get("bucket"), order.get("since")
    if not isinstance(bucket, str) or not isinstance(since, str):
        raise Refused("a backfill order names a bucket and a period start (since: 30d, or a date)")
    if ANY_BUCKET not in settings.allowed_buckets and bucket not in settings.allowed_buckets:
        raise Refused(f"bucket {bucket} is not in ALLOWED_BUCKETS")
    region = order.get("region") or dict(settings.reconcile_buckets).get(bucket) or settings.region
    if not isinstance(region, str) or not region:
        raise Refused("a backfill order names a region (or set DEFAULT_REGION)")
    until = order.get("until")
    start, end = period_of(since, until if isinstance(until, str) else None, now)
    number = order.get("round", 1)
    return bucket, region, Period(start, end, "backfill"), number if isinstance(number, int) else 1
