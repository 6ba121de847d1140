"""The hand-off's arithmetic (handlers/reconcile/handoff.py): how many jobs a worker takes and how long they
are its own. test_fanout.py hands batches to workers through the SCF emulator end to end."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from handlers.reconcile.handoff import MAX_BATCH, batch_size, worker_until


def test_a_batch_is_what_a_worker_checks_in_half_its_time_within_bounds():
    # 4 jobs a second, 30 s less 5 s for a job under way and 3 s for closing: half of 22 s is 44 jobs.
    assert batch_size(4.0, 30, 5, 3) == 44
    assert batch_size(0.01, 30, 5, 3) == 1  # at least one job
    assert batch_size(1000.0, 900, 5, 5) == MAX_BATCH  # an asynchronous event's 128 KB


def test_a_batch_is_the_workers_through_its_time_and_scfs_two_retries_a_minute_apart():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    assert worker_until(now, 30) == now + timedelta(seconds=90) + timedelta(minutes=2)
