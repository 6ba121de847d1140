"""The checkpoint's rules, pure: what a tick may claim, how two claims merge, its JSON form."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from handlers.reconcile import checkpoint as cp

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_settled_through_stops_before_the_oldest_job_not_settled():
    seen = cp.Observations()
    seen.settle("a", at(1))
    seen.hold("b", at(2))  # unfinished, or its check failed
    seen.settle("c", at(3))
    moved, given_up = cp.advanced(cp.Checkpoint.fresh(at(0)), seen, at(10), at(12), at(0))
    assert moved.settled_through == at(2) - cp.SECOND and given_up == []
    assert dict(moved.settled) == {"c": at(3)}  # "a" is covered by settledThrough now
    assert cp.is_settled(moved, "a", at(1)) and cp.is_settled(moved, "c", None)
    assert not cp.is_settled(moved, "b", at(2))


def test_with_nothing_unsettled_it_moves_to_the_listing_frontier_and_never_back():
    seen = cp.Observations()
    seen.settle("a", at(9))
    moved, _ = cp.advanced(cp.Checkpoint(at(0), at(5)), seen, at(8), at(12), at(0))
    assert moved.settled_through == at(8) and dict(moved.settled) == {"a": at(9)}
    again, _ = cp.advanced(moved, cp.Observations(), at(6), at(12), at(0))  # a listing that reached less far
    assert again.settled_through == at(8)


def test_frontier_of_a_listing():
    now, start, end = at(60), at(0), at(60) + cp.SECOND
    assert cp.frontier(True, at(59), start, end, now) == now - timedelta(seconds=cp.EDGE_SECONDS)
    assert cp.frontier(False, at(30), start, end, now) == at(30) - cp.SECOND  # its second may hold more jobs
    assert cp.frontier(False, None, start, end, now) == start


def test_a_checkpoint_from_before_the_window_is_moved_up_to_it_and_a_later_one_is_not_used():
    stored = cp.Checkpoint(at(0), at(5), {"x": at(7)})
    assert cp.covering(stored, at(6)).settled_through == at(6)
    assert cp.covering(stored, at(6)).since == at(6)
    assert cp.covering(stored, at(-10)) == cp.Checkpoint.fresh(at(-10))  # it never spoke for what is older
    assert cp.covering(None, at(3)) == cp.Checkpoint.fresh(at(3))


def test_merging_keeps_every_claim_of_both():
    ours = cp.Checkpoint(at(0), at(10), {"a": at(12)}, {"h": cp.HandOff(at(13), at(30), "inv-1")})
    theirs = cp.Checkpoint(at(1), at(11), {"b": at(14), "z": at(10.5)}, {"h": cp.HandOff(at(13), at(40), "inv-2")})
    both = cp.merged(ours, theirs)
    assert (both.since, both.settled_through) == (at(1), at(11))
    assert dict(both.settled) == {"a": at(12), "b": at(14)}  # "z" is covered by settledThrough
    assert both.handed_off["h"].invocation == "inv-2"  # the later hand-off stands
    assert cp.merged(both, None) == both
    assert cp.merged(theirs, ours).settled_through == both.settled_through


def test_the_json_form_round_trips_and_an_operator_may_write_iso_times():
    checkpoint = cp.Checkpoint(at(0), at(10), {"a": at(12)}, {"h": cp.HandOff(at(13), at(30), "inv")},
                               at(20), "req-1", {"listed": 3})
    body = cp.to_json(checkpoint, "pq", "VoiceSeparate")
    document = json.loads(body)
    assert document["settledThrough"] == "2026-11-23T10:10:00+0000" and document["queueId"] == "pq"
    assert cp.from_json(body) == checkpoint
    document["settledThrough"] = "2026-11-23T18:10:00+08:00"
    assert cp.from_json(json.dumps(document).encode()).settled_through == at(10)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"version": 2}', b'{"version": 1, "since": "yesterday"}',
                                  b'{"version": 1, "since": "2026-11-23T10:00:00+0000"}'])
def test_a_broken_checkpoint_is_refused_with_a_reason(body):
    with pytest.raises(cp.BadCheckpoint):
        cp.from_json(body)


def test_the_settled_ids_are_bounded():
    seen = cp.Observations()
    for n in range(cp.MAX_SETTLED + 5):
        seen.settle(f"j{n}", at(20) + timedelta(seconds=n))
    moved, _ = cp.advanced(cp.Checkpoint.fresh(at(0)), seen, at(10), at(12), at(0))
    assert len(moved.settled) == cp.MAX_SETTLED and "j0" not in moved.settled  # looked at again: one HEAD
