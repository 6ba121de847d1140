"""What the sweep does with each job CI reports, decided from what is known of it (pure): settle it, hold it
for the next tick, or look for its settled marker and then check it, here or in a worker's hands; and
how a list's time is shared between the work and closing it."""
from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from handlers.intake.models import Job
from handlers.operations.settled import needs_no_marker

Allowed = Callable[[Job], str | None]  # the reason a job is outside the allow-lists, or None


class Listed(Enum):
    """What a job CI reported asks for, before any request."""

    UNFINISHED = "unfinished"  # held: CI lists a job by its CreationTime, and it may finish long after
    NOTHING_TO_CHECK = "nothing to check"  # failed, cancelled or without outputs: settled as listed
    OUTSIDE = "outside"  # outside the allow-lists: settled, nothing will ever be checked
    LOOK = "look"  # one HEAD of its settled marker, then a check if it is not there


class Looked(Enum):
    """What a job whose marker was looked for asks for."""

    SETTLED = "settled"  # the marker is there
    NO_TIME = "no time"  # no time was left even to look: held, left unchecked
    IN_HANDS = "in hands"  # a worker has it: held until the worker's time runs out
    CHECK = "check"  # held until checked, here or by a worker


def on_listing(job: Job, allowed: Allowed) -> tuple[Listed, str | None]:
    """What `job` (one with a CreationTime) asks for, and why it is outside the allow-lists when it is
    (asked last: a job that needs nothing costs no look at the lists)."""
    if job.unfinished:
        return Listed.UNFINISHED, None
    if needs_no_marker(job):
        return Listed.NOTHING_TO_CHECK, None
    if (reason := allowed(job)) is not None:
        return Listed.OUTSIDE, reason
    return Listed.LOOK, None


def after_look(done: bool | None, in_hands: bool) -> Looked:
    """`done`: whether the marker is there, None when there was no time to ask; `in_hands`: a worker has
    the job (its invocation and SCF's retries have not run out of time yet)."""
    if done:
        return Looked.SETTLED
    if done is None:
        return Looked.NO_TIME
    return Looked.IN_HANDS if in_hands else Looked.CHECK


def check_here(workers_left: int, capacity: int) -> bool:
    """Here while this invocation has room (`capacity`: jobs that still fit in its time); beyond, to a
    worker. With no worker to hand to, here all the same: a job the time does not reach is left for the
    next tick."""
    return workers_left <= 0 or capacity > 0


def closing_seconds(budget: float) -> float:
    """Kept for writing a list's checkpoint back and releasing its lease, whatever the checks do."""
    return max(1.0, min(5.0, budget * 0.1))


def reserve_seconds(budget: float, cos_timeout: float) -> float:
    """The time to finish a job under way: nothing new starts with less left."""
    return min(max(2.0, cos_timeout), budget / 4)
