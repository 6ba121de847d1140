"""The checkpoint's rules, pure: what a tick may claim, how two claims merge, its JSON form."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from handlers.reconcile import checkpoint as cp

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_the_listing_moves_on_and_what_is_not_settled_is_held_by_id():
    seen = cp.Observations()
    seen.settle("a", at(1))
    seen.hold("b", at(2))  # unfinished, or its check failed
    seen.settle("c", at(3))
    seen.hold("d", at(11))  # past where the listing got: listed again next time
    seen.settle("e", at(12))  # past it, settled: kept by id
    moved = cp.advanced(cp.Checkpoint.fresh(at(0)), seen, at(10), at(12))
    assert moved.listed_through == at(10) and dict(moved.held) == {"b": at(2)}
    assert dict(moved.settled) == {"e": at(12)}
    assert cp.is_settled(moved, "a", at(1)) and cp.is_settled(moved, "e", None)
    assert not cp.is_settled(moved, "b", at(2)) and not cp.is_settled(moved, "d", at(11))
    # The next tick settles "b": it leaves `held`; a listing that got less far moves nothing back.
    again = cp.advanced(moved, cp.Observations(settled={"b": at(2)}), at(6), at(13))
    assert (again.listed_through, dict(again.held)) == (at(10), {})


def test_held_jobs_a_tick_did_not_get_to_stay_held_and_hand_offs_run_out():
    start = cp.Checkpoint(at(0), at(10), held={"x": at(4), "y": at(5)},
                          handed_off={"x": cp.HandOff(at(30)), "y": cp.HandOff(at(11))})
    moved = cp.advanced(start, cp.Observations(), at(10), at(20))
    assert dict(moved.held) == {"x": at(4), "y": at(5)}
    assert dict(moved.handed_off) == {"x": cp.HandOff(at(30))}  # y's worker time is over: looked at again
    assert cp.in_hands(moved, "x", at(20)) and not cp.in_hands(moved, "y", at(20))


def test_frontier_of_a_listing():
    now, start, end = at(60), at(0), at(60) + cp.SECOND
    assert cp.frontier(True, at(59), start, end, now) == now - timedelta(seconds=cp.EDGE_SECONDS)
    assert cp.frontier(True, None, start, at(30), now) == at(30) - cp.SECOND  # a day of the past, read to its end
    assert cp.frontier(False, at(30), start, end, now) == at(30) - cp.SECOND  # its second may hold more jobs
    assert cp.frontier(False, None, start, end, now) == start


def test_a_checkpoint_from_before_the_window_gives_up_what_is_older_and_a_later_one_is_not_used():
    stored = cp.Checkpoint(at(0), at(5), held={"old": at(3), "young": at(7)}, settled={"x": at(8)})
    moved, given_up = cp.covering(stored, at(6))
    assert (moved.since, moved.listed_through, dict(moved.held), given_up) == (at(6), at(6), {"young": at(7)}, ["old"])
    assert cp.covering(stored, at(-10)) == (cp.Checkpoint.fresh(at(-10)), [])  # it never spoke for what is older
    assert cp.covering(None, at(3)) == (cp.Checkpoint.fresh(at(3)), [])


def test_merging_keeps_every_claim_of_both():
    ours = cp.Checkpoint(at(0), at(10), held={"h": at(4), "k": at(6)}, settled={"a": at(12)},
                         handed_off={"h": cp.HandOff(at(30), "inv-1")})
    theirs = cp.Checkpoint(at(1), at(8), held={"k": at(6), "m": at(7)}, settled={"b": at(14), "z": at(9)},
                           handed_off={"k": cp.HandOff(at(40), "inv-2")})
    both = cp.merged(ours, theirs)
    assert (both.since, both.listed_through) == (at(1), at(10))
    # h: theirs says settled (in their interval, not held); k: held by both; m: ours says settled.
    assert dict(both.held) == {"k": at(6)}
    assert dict(both.settled) == {"a": at(12), "b": at(14)}  # "z" is covered by listedThrough
    assert dict(both.handed_off) == {"k": cp.HandOff(at(40), "inv-2")}
    assert cp.merged(both, None) == both
    assert cp.merged(theirs, ours).held == both.held


def test_the_json_form_round_trips_and_an_operator_may_write_iso_times():
    checkpoint = cp.Checkpoint(at(0), at(10), {"h": at(4)}, {"a": at(12)}, {"h": cp.HandOff(at(30), "inv")},
                               {"b-1/out/x.mp3": ("a", at(12))}, updated_at=at(20), updated_by="req-1",
                               last_tick={"listed": 3})
    body = cp.to_json(checkpoint, "pq", "VoiceSeparate")
    document = json.loads(body)
    assert document["listedThrough"] == "2026-11-23T10:10:00+0000" and document["queueId"] == "pq"
    assert cp.from_json(body) == checkpoint
    document["listedThrough"] = "2026-11-23T18:10:00+08:00"
    assert cp.from_json(json.dumps(document).encode()).listed_through == at(10)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"version": 1}', b'{"version": 2, "since": "yesterday"}',
                                  b'{"version": 2, "since": "2026-11-23T10:00:00+0000"}'])
def test_a_broken_checkpoint_is_refused_with_a_reason(body):
    with pytest.raises(cp.BadCheckpoint):
        cp.from_json(body)


def test_the_ids_kept_past_the_listing_are_bounded():
    seen = cp.Observations()
    for n in range(cp.MAX_SETTLED + 5):
        seen.settle(f"j{n}", at(20) + timedelta(seconds=n))
    moved = cp.advanced(cp.Checkpoint.fresh(at(0)), seen, at(10), at(12))
    assert len(moved.settled) == cp.MAX_SETTLED and "j0" not in moved.settled  # looked at again: one HEAD


def test_an_output_written_again_by_a_later_job_names_the_earlier_one():
    outputs = {"b-1/out/x": ("j1", at(5))}
    assert cp.earlier_writer(outputs, "b-1/out/x", "j2", at(9)) == ("j1", ("j2", at(9)))
    assert cp.earlier_writer(outputs, "b-1/out/x", "j0", at(2)) == ("j0", ("j1", at(5)))  # j0 is the older
    assert cp.earlier_writer(outputs, "b-1/out/x", "j1", at(5)) is None
    assert cp.earlier_writer(outputs, "b-1/out/y", "j2", at(9)) is None


def test_output_writers_merge_to_the_newest_and_leave_with_the_period():
    seen = cp.Observations(outputs={"b/k": ("j2", at(9)), "b/old": ("j0", at(0.5))})
    start = cp.Checkpoint(at(1), at(3), outputs={"b/k": ("j1", at(5))})
    moved = cp.advanced(start, seen, at(4), at(12))
    assert dict(moved.outputs) == {"b/k": ("j2", at(9))}  # "b/old" was written before the period
    assert dict(cp.merged(start, moved).outputs) == {"b/k": ("j2", at(9))}
    assert dict(cp.covering(moved, at(10))[0].outputs) == {}
