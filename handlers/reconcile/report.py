"""What a sweep tick did (SweepReport): counts and a few examples of each kind, so that its log line
stays one line whatever the scale, and the counting of the jobs it checked."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from handlers import log
from handlers.reconcile.checks import Checked

EXAMPLES = 3  # the tick's log line names at most this many of each kind: it stays one line at any scale


@dataclass
class SweepReport:
    """What a tick did, as counts and a few examples: its log line is one line whatever the scale."""

    queues: int = 0
    lists: int = 0
    listed: int = 0
    pages: int = 0
    settled_before: int = 0  # known to the checkpoint: not even a HEAD (counted in alreadyDone too)
    already_done: int = 0  # a HEAD found its settled marker
    nothing_to_check: int = 0  # failed, cancelled, without outputs, or outside the allow-lists
    unfinished: int = 0
    in_hands: int = 0  # a worker has them
    looked_again: int = 0  # held by the last tick, read back from CI
    held: int = 0  # not settled at the end of the tick: looked at again by the next
    rechecked: int = 0  # settled before, looked at again: a later job wrote one of their outputs
    checked: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    handed_off: int = 0
    workers: int = 0
    left_unchecked: int = 0
    unlisted: list[str] = field(default_factory=list)  # lists not read to the end: "<list> from <time>"
    busy: list[str] = field(default_factory=list)  # lists another invocation holds
    given_up: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    retry: int = 0  # jobs checked that need another try

    @property
    def stopped_early(self) -> bool:
        return bool(self.left_unchecked or self.unlisted)

    @property
    def troubled(self) -> bool:
        return bool(self.errors or self.unreadable or self.too_large or self.retry or self.given_up
                     or self.stopped_early)

    def as_dict(self) -> dict[str, Any]:
        return {"queues": self.queues, "lists": self.lists, "listed": self.listed, "pages": self.pages,
                "alreadyDone": self.settled_before + self.already_done, "settledBefore": self.settled_before,
                "nothingToCheck": self.nothing_to_check, "unfinished": self.unfinished, "inHands": self.in_hands,
                "lookedAgain": self.looked_again, "held": self.held,
                "rechecked": self.rechecked, "checked": self.checked, "outcomes": sorted(self.outcomes),
                "outcomeCounts": dict(sorted(self.outcomes.items())),
                "handedOff": self.handed_off, "workers": self.workers,
                # What a tick that ran out of time left (flat: CLS indexes a JSON line's first level only).
                "stoppedEarly": self.stopped_early, "leftUnchecked": self.left_unchecked,
                "unlistedLists": len(self.unlisted), "unlisted": self.unlisted[:EXAMPLES],
                "busy": self.busy[:EXAMPLES], "busyCount": len(self.busy),
                "givenUp": self.given_up[:EXAMPLES], "givenUpCount": len(self.given_up),
                "unreadable": self.unreadable[:EXAMPLES], "unreadableCount": len(self.unreadable),
                "errors": self.errors[:EXAMPLES], "errorCount": len(self.errors),
                # Outputs no tick can hash as configured (see the reason in their "object checked" line).
                "tooLarge": self.too_large[:EXAMPLES], "tooLargeCount": len(self.too_large)}


def count_checked(report: SweepReport, one: Checked) -> None:
    """Count a job the tick's checker was given: left (never started), skipped, failed, or checked with
    each output's outcome."""
    if not one.started:
        report.left_unchecked += 1
    elif one.skipped:
        report.nothing_to_check += 1
        log.warning("sweep skipped a job outside the allow-lists", jobId=one.job.job_id, reason=one.skipped)
    elif one.error:
        report.errors.append(f"job {one.job.job_id}: {one.error}")
    else:
        report.checked += len(one.results)
        for result in one.results:
            report.outcomes[result.outcome.value] += 1
            report.retry += result.outcome.value == "retry"
            report.too_large.extend(f"{result.job.job_id} {o.check.target.bucket}/{o.check.target.key}"
                                    for o in result.objects if o.check.too_large)
        report.errors.extend(f"job {one.job.job_id}: {problem}" for problem in one.problems)
