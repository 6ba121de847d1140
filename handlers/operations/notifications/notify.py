"""Notifications (NOTIFY_URL): one message per job whose result NOTIFY_ON names, per URL; the step the
pipeline calls. The parts: message.py (what a message says), one module per format (wecom.py, dingtalk.py,
feishu.py, webhooks.py; formats.py picks), delivery.py (sending within the deadline), record.py (what was
announced before).

Each problem (an object and its verdict, or the job's outcome when NOTIFY_ON names it) is announced once
per URL: a message names only the problems not announced to that URL before (a FileHashCode callback's new
mismatch; not the missing output the media job's callback announced). What was announced is the job's
record (record.py, which also says what windows COS leaves for a duplicate).

A notification that fails never changes a verdict or the status code: it is logged at ERROR,
counted in `job processed`, and tried again by the next replay (nothing was recorded).
"""
from __future__ import annotations

import time
import urllib.parse
from functools import partial
from typing import Any

from handlers import log
from handlers.config import Settings, notify_format_of
from handlers.deadline import Deadline
from handlers.errors import StorageError, TransientError
from handlers.intake.models import JobResult
from handlers.operations.notifications import record
from handlers.operations.notifications.delivery import DeliveryFailed, Send, default_sender, deliver
from handlers.operations.notifications.formats import build_request, robot_refusal
from handlers.operations.notifications.message import Notice, narrowed, notice_of
from handlers.operations.notifications.record import RecordStore, record_entry, record_of, url_hash

RESERVE_SECONDS = 1.5  # kept for the audit reports and the response after the notifications

_registered: set[str] = set()


def notify(results: list[JobResult], settings: Settings, store: RecordStore, deadline: Deadline,
           request_id: str, send: Send | None = None) -> dict[str, dict[str, Any]]:
    """Send the messages NOTIFY_ON calls for; returns, per job id, the fields its
    `job processed` line carries (`notification`, `notificationsSent`, `notificationsFailed`)."""
    secrets = [s for s in (settings.notify_secret, *settings.notify_urls) if s not in _registered]
    if secrets:  # a robot's URL is its credential: no log line may show it
        log.register_secrets(secrets)
        _registered.update(secrets)
    sender = send or default_sender()
    budget = Deadline(deadline.at - (RESERVE_SECONDS if settings.report_prefix else 0.5))
    fields: dict[str, dict[str, Any]] = {}
    for result in results:
        notice = notice_of(result, settings.notify_on, request_id)
        if notice is None:
            continue
        tally = _notify_job(notice, result, settings, store, sender, budget)
        status = "failed" if tally["failed"] else "sent" if tally["sent"] else "already-sent"
        fields[result.job.job_id] = {"notification": status, "notificationsSent": tally["sent"],
                                     "notificationsFailed": tally["failed"]}
    return fields


def _notify_job(notice: Notice, result: JobResult, settings: Settings, store: RecordStore, send: Send,
                deadline: Deadline) -> dict[str, int]:
    """Each URL gets what was not announced to it: one read of the job's record, one write after sending."""
    urls = settings.notify_urls
    where = record_of(result, settings.report_prefix)
    if where is None and settings.verify_with_ci:
        # No bucket: CI could not be asked about this job (pipeline._confirm), so nothing vouches for it.
        log.warning("notification not sent", jobId=notice.job_id, outcome=notice.outcome,
                    reason="the job names no bucket to confirm it in with CI")
        return {"sent": 0, "already-sent": 0, "failed": len(urls)}
    try:
        announced = record.read_announced(store, where, notice.job_id, deadline) if where is not None else {}
    except (TransientError, StorageError) as exc:
        log.error("notification not sent", jobId=notice.job_id, outcome=notice.outcome,
                  reason=f"what was announced before could not be read: {exc}")
        return {"sent": 0, "already-sent": 0, "failed": len(urls)}
    tally, entries = {"sent": 0, "already-sent": 0, "failed": 0}, []
    for url in urls:
        host = urllib.parse.urlsplit(url).hostname or "?"
        message = narrowed(notice, announced.get(url_hash(url), frozenset()))
        if message is None:
            log.info("notification already sent", jobId=notice.job_id, outcome=notice.outcome, host=host)
            tally["already-sent"] += 1
            continue
        entry = _send_one(message, url, host, settings, send, deadline)
        tally["sent" if entry else "failed"] += 1
        entries += [entry] if entry else []
    if entries and where is None:
        log.warning("notification sent, but the job names no bucket to remember it in: a replay sends it again",
                    jobId=notice.job_id)
    elif entries and where is not None:
        record.add(store, where, notice.job_id, entries, deadline)
    return tally


def _send_one(message: Notice, url: str, host: str, settings: Settings, send: Send,
              deadline: Deadline) -> dict[str, Any] | None:
    """Deliver `message` to `url`; its record entry, or None when it failed (logged)."""
    fmt = notify_format_of(url, settings.notify_format)
    request = build_request(message, url, fmt, settings.notify_secret, time.time())
    try:
        deliver(request, partial(robot_refusal, fmt), send, deadline)
    except DeliveryFailed as exc:
        log.error("notification failed", jobId=message.job_id, outcome=message.outcome, host=host, format=fmt,
                  reason=str(exc))
        return None
    log.info("notification sent", jobId=message.job_id, outcome=message.outcome, host=host, format=fmt)
    return record_entry(message, url, host, fmt, time.time())
