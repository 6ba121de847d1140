"""What the sweep does with each job CI reports (handlers/reconcile/plan.py): pure decisions, asserted
directly; the end-to-end tests of the sweep (test_sweep_checkpoint.py, test_fanout.py) show them at work."""
from __future__ import annotations

import pytest

from handlers.intake.callback import parse_callback
from handlers.intake.models import Job
from handlers.reconcile import plan
from handlers.reconcile.plan import Listed, Looked
from tests.samples import job_xml


def job(state: str = "Success", outputs: bool = True) -> Job:
    names = ["out/a.mp3"] if outputs else []
    return parse_callback(job_xml(md5s=None, names=names, state=state)).jobs_detail[0]


def test_a_listed_job_is_held_settled_or_looked_at_and_the_allow_lists_are_asked_last():
    asked: list[str] = []

    def allowed(one: Job) -> str | None:
        asked.append(one.job_id)
        return None

    assert plan.on_listing(job("Running"), allowed) == (Listed.UNFINISHED, None)
    assert plan.on_listing(job("Failed"), allowed) == (Listed.NOTHING_TO_CHECK, None)
    assert plan.on_listing(job(outputs=False), allowed) == (Listed.NOTHING_TO_CHECK, None)
    assert asked == []  # a job that needs nothing costs no look at the lists
    assert plan.on_listing(job(), allowed) == (Listed.LOOK, None)
    assert plan.on_listing(job(), lambda one: "bucket not allowed") == (Listed.OUTSIDE, "bucket not allowed")
    assert asked == [job().job_id]


@pytest.mark.parametrize("done, in_hands, looked", [
    (True, True, Looked.SETTLED),  # the marker wins over a worker's claim
    (True, False, Looked.SETTLED),
    (None, True, Looked.NO_TIME),
    (None, False, Looked.NO_TIME),
    (False, True, Looked.IN_HANDS),
    (False, False, Looked.CHECK),
])
def test_after_its_marker_was_looked_for(done, in_hands, looked):
    assert plan.after_look(done, in_hands) is looked


@pytest.mark.parametrize("workers_left, capacity, here", [
    (0, 0, True),  # no worker to hand to: here all the same, the time left decides
    (0, 5, True),
    (3, 5, True),  # room here first
    (3, 0, False),  # beyond: to a worker
])
def test_a_job_to_check_is_checked_here_while_there_is_room(workers_left, capacity, here):
    assert plan.check_here(workers_left, capacity) is here


def test_a_lists_time_keeps_some_for_closing_and_for_a_job_under_way():
    assert [plan.closing_seconds(b) for b in (3, 30, 900)] == [1.0, 3.0, 5.0]
    assert plan.reserve_seconds(30, 5) == 5  # the COS timeout, a job's own retries
    assert plan.reserve_seconds(30, 1) == 2.0  # at least two seconds
    assert plan.reserve_seconds(4, 5) == 1.0  # never more than a quarter of the time
