"""The path every callback takes, whichever trigger brought it:

    confirm with CI → expand a workflow → verify and act → notify → audit report

Each step is a function of the callback the step before returned; the triggers
(`handlers/triggers/`) only turn their event into a callback and the results into an answer.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from handlers import log
from handlers.ci.confirm import CiUnavailable, JobNotConfirmed, confirmed
from handlers.ci.jobs import CiJobs
from handlers.config import ANY_BUCKET, Settings
from handlers.deadline import Deadline
from handlers.intake.auth import check_allowed
from handlers.intake.callback import MalformedCallback, parse_callback
from handlers.intake.http import HttpError
from handlers.intake.models import Callback, JobResult
from handlers.operations.answer import needs_retry, object_entry
from handlers.process import Processor
from handlers.storage.cos import ObjectStore

# Workflow expansion, server-side hashing, notifications and audit reports are imported where
# they are used: most invocations need none of them, and every module imported at the top
# lengthens a cold start.


class RetryLater(Exception):
    """Raised from a worker or queue invocation so that SCF delivers it again."""


class Refused(Exception):
    """A callback that must not be acted on; retrying would not change that."""


class Pipeline:
    def __init__(self, settings: Settings, ci_jobs: CiJobs, store: ObjectStore, processor: Processor):
        self.settings = settings
        self.ci_jobs = ci_jobs
        self.store = store
        self.processor = processor

    def run(self, callback: Callback, deadline: Deadline, request_id: str,
            started: float, *, from_ci: bool = False) -> tuple[list[JobResult], list[str]]:
        """Confirm, expand, verify and act, notify, report, mark the settled jobs.

        `from_ci`: the callback is CI's own answer (a job the sweep just listed, or its worker just read
        back), so asking CI again would prove nothing; only internal paths set it, never a caller's event.
        Returns the results and the audit problems. Raises MalformedCallback, JobNotConfirmed,
        CiUnavailable, or HttpError (403) when CI's account of a job names a bucket not allowed."""
        finished, callback = self._finish_server_hashes(callback, deadline)
        if from_ci:
            check_allowed(callback, self.settings)
        else:
            callback = self._confirm(callback, deadline)
        callback = self._expand(callback, deadline)
        results = finished + self.processor.run(callback, deadline)
        notified = self._notify(results, deadline, request_id)
        log_results(results, time.time() - started, notified)
        problems = self._report(results, deadline, request_id, started)
        if not problems:
            self._settle(results, deadline, request_id)
        return results, problems

    def run_quietly(self, body: bytes, deadline: Deadline, request_id: str) -> list[JobResult]:
        """The pipeline for invocations nobody waits on (worker, queue): refusals are logged
        and raise Refused, transient failures raise RetryLater."""
        try:
            callback = parse_callback(body)
            check_allowed(callback, self.settings)
            results, problems = self.run(callback, deadline, request_id, time.time())
        except (MalformedCallback, JobNotConfirmed, HttpError) as exc:
            reason = exc.reason if isinstance(exc, HttpError) else str(exc)
            log.warning("callback rejected", reason=reason, trigger="worker or queue")
            raise Refused(reason) from None
        except CiUnavailable as exc:
            raise RetryLater(str(exc)) from None
        if needs_retry(results) or problems:
            raise RetryLater("; ".join(problems) or "some objects need another try (see the log)")
        return results

    # --- the steps --------------------------------------------------------------------------

    def _finish_server_hashes(self, callback: Callback, deadline: Deadline) -> tuple[list[JobResult], Callback]:
        """VERIFY_MODE=server: a FileHashCode callback completes the verdicts it was started for."""
        if not any(job.tag == "FileHashCode" for job in callback.jobs_detail):
            return [], callback
        from handlers.checking.hashcallback import finish
        return finish(callback, self.processor.server_hash().hashing, self.processor.finish_hashed,
                      self.settings, deadline)

    def _confirm(self, callback: Callback, deadline: Deadline) -> Callback:
        """Callbacks are unsigned: what gets verified is CI's own account of each job."""
        if not self.settings.verify_with_ci:
            return callback
        ci = self.ci_jobs.bound(deadline)
        callback = confirmed(callback, ci.describe, deadline)
        if self.settings.report_prefix or self.settings.notify_urls:
            # A report or a message goes out for failed jobs too: CI must back those as well.
            from handlers.operations.audit import confirmed_for_reports
            from handlers.storage.records import STATE_PREFIX
            callback = confirmed_for_reports(callback, ci.describe, self.settings.report_prefix or STATE_PREFIX,
                                             deadline)
        check_allowed(callback, self.settings)  # CI's account of a job names its own buckets
        return callback

    def _expand(self, callback: Callback, deadline: Deadline) -> Callback:
        """A WorkflowFinish names its jobs; CI has their outputs."""
        if callback.workflow_execution is None:
            return callback
        from handlers.ci.workflow import expand
        candidates = tuple(b for b in self.settings.allowed_buckets if b != ANY_BUCKET)
        callback = expand(callback, self.ci_jobs.bound(deadline).describe, self.settings.region, deadline, candidates)
        check_allowed(callback, self.settings)  # the jobs CI reports for it name their own buckets
        return callback

    def _notify(self, results: list[JobResult], deadline: Deadline,
                request_id: str) -> Mapping[str, Mapping[str, Any]]:
        if not self.settings.notify_urls:
            return {}
        from handlers.operations.notifications.notify import notify
        return notify(results, self.settings, self.store.bound(deadline), deadline, request_id)

    def _report(self, results: list[JobResult], deadline: Deadline, request_id: str, started: float) -> list[str]:
        if not self.settings.report_prefix:
            return []
        from handlers.operations.audit import write_reports
        problems = write_reports(results, self.settings.report_prefix, self.store.bound(deadline), deadline,
                                 request_id, started)
        for problem in problems:
            log.error("audit report not written", reason=problem)
        return problems


    def _settle(self, results: list[JobResult], deadline: Deadline, request_id: str) -> None:
        """The sweep tells a settled job by one marker (handlers/operations/settled.py). One that is not
        written costs the sweep another look at the job, never a verdict: it is logged, not retried."""
        if not self.settings.reconcile_buckets:
            return
        from handlers.operations.settled import record
        from handlers.storage.records import state_prefix
        for problem in record(results, state_prefix(self.settings.report_prefix), self.store.bound(deadline),
                              deadline, request_id):
            log.warning("settled marker not written", reason=problem)


def log_results(results: list[JobResult], seconds: float,
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
