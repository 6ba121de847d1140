"""Deadline-aware planning of content hashes (issue 13, item 2): the time a hash takes is
estimated from the size and the speed this container has measured; one that cannot finish
is not started, and one no invocation of this configuration could finish says so."""
from __future__ import annotations

import json
import time

import pytest
import xmltodict

from handlers.checking.throughput import HashEstimate, HashThroughput
from handlers.checking.verify import TOO_LARGE, hash_time_problem
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

MIB = 1 << 20
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}


def _pattern(mib: int) -> bytes:
    block = bytes(range(256)) * 4096
    return b"".join(bytes([i % 256]) + block[1:] for i in range(mib))


def _put(emulator, key: str, data: bytes) -> bytes:
    emulator.put_object(BUCKET, key, data, part_size=8 * MIB)  # multipart: only the content decides
    return job_xml(md5s={key: md5(data)}, names=[key], job_id="j" + key.encode().hex()[:31].rjust(31, "0"))


def _gets(emulator, key: str):
    return [r for r in emulator.requests if r.method == "GET" and r.key == key and not r.query]


def test_a_huge_object_with_a_short_limit_is_not_started_and_the_handler_answers_in_time(emulator, make_app,
                                                                                         log_lines):
    data = _pattern(26)
    body = _put(emulator, "out/huge.wav", data)
    app = make_app(HASH_MIB_PER_SECOND="2")  # assumed until measured: 13 s, with 2 s to work in
    started = time.monotonic()
    status, answer, headers = invoke(app, http_event(body), {"request_id": "r", "time_limit_in_ms": 3000})
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"{elapsed:.1f} s for an answer that needs a HEAD"
    obj = answer["jobs"][0]["objects"][0]
    # Retrying cannot help: 200, the job failed, the object untouched (the sweep keeps naming it).
    assert status == 200 and "Retry-After" not in headers and obj["verdict"] == "error" and obj["tooLarge"] is True
    assert answer["jobs"][0]["outcome"] == "failed"
    reason = obj["reason"]
    assert reason.startswith(f"{TOO_LARGE}: not enough time to hash {len(data)} bytes")
    assert "13.0 s" in reason and "2.0 s" in reason and "no retry will start it" in reason
    assert "900 s" in reason and "VERIFY_MODE=server" in reason and "HASH_MIB_PER_SECOND" in reason
    assert _gets(emulator, "out/huge.wav") == []  # not started
    assert emulator.tags(BUCKET, "out/huge.wav") == {}
    logged = [json.loads(line) for line in log_lines if '"object checked"' in line]
    assert logged[0]["tooLarge"] is True and logged[0]["level"] in ("WARNING", "ERROR")


def test_a_queue_message_too_large_for_this_configuration_is_not_delivered_again_and_again(emulator, make_app):
    """Retrying cannot help an object no invocation of this configuration can hash: the CMQ
    batch is acknowledged (job outcome failed, the object untagged), not raised back to SCF
    to be delivered again forever; the sweep keeps naming it (below)."""
    data = _pattern(26)
    body = _put(emulator, "out/huge.wav", data)
    event = {"Records": [{"CMQ": {"type": "queue", "msgId": "m1", "msgBody": body.decode()}}]}
    result = make_app(HASH_MIB_PER_SECOND="2").handle(event, {"request_id": "r", "time_limit_in_ms": 3000})
    [message] = result["messages"]
    [job] = message["jobs"]
    assert job["outcome"] == "failed" and job["objects"][0]["tooLarge"] is True
    assert _gets(emulator, "out/huge.wav") == [] and emulator.tags(BUCKET, "out/huge.wav") == {}


@pytest.mark.slow
def test_the_sweep_names_the_outputs_too_large_for_this_configuration(emulator, make_app, log_lines):
    body = _put(emulator, "out/huge.wav", _pattern(96))
    detail = xmltodict.parse(body)["Response"]["JobsDetail"]
    emulator.register_job(detail["Input"]["BucketId"], detail)
    app = make_app(DEFAULT_REGION=REGION, HASH_MIB_PER_SECOND="1")  # 96 s, in a 15 s limit
    for _ in range(2):  # not decided, so every tick takes it up again, and says so
        result = app.handle(TIMER, {"time_limit_in_ms": 15000})  # the sweep keeps COS_TIMEOUT_SECONDS back
        assert result["sweep"]["checked"] == 1
        assert result["sweep"]["tooLarge"] == [f"{detail['JobId']} {BUCKET}/out/huge.wav"]
    assert _gets(emulator, "out/huge.wav") == []
    summaries = [json.loads(line) for line in log_lines if '"reconciliation sweep finished"' in line]
    assert [s["level"] for s in summaries] == ["WARNING", "WARNING"]  # an operator has to act


@pytest.mark.slow
def test_the_container_learns_its_speed_from_the_reads_it_finished(emulator, make_app):
    first, second = _pattern(64), _pattern(96)
    first_body, second_body = _put(emulator, "out/first.wav", first), _put(emulator, "out/second.wav", second)
    # A fresh container assumes 20 MiB/s: 96 MiB take 4.8 s, more than a 3 s limit leaves.
    status, answer, _ = invoke(make_app(), http_event(second_body), {"request_id": "r", "time_limit_in_ms": 3000})
    assert answer["jobs"][0]["objects"][0].get("tooLarge") is True
    app = make_app()
    status, answer, _ = invoke(app, http_event(first_body), {"request_id": "r1", "time_limit_in_ms": 30000})
    assert status == 200 and answer["jobs"][0]["objects"][0]["verdict"] == "verified"
    # The same container, having read 64 MiB at its own speed, hashes 96 MiB within 3 s.
    status, answer, _ = invoke(app, http_event(second_body), {"request_id": "r2", "time_limit_in_ms": 3000})
    obj = answer["jobs"][0]["objects"][0]
    assert status == 200 and (obj["verdict"], obj["method"]) == ("verified", "content"), obj


@pytest.mark.slow
def test_one_slow_read_never_fails_a_later_output_for_good(emulator, make_app):
    """A moment of slowness (one GET answered 3 s late) is not evidence that an output no
    invocation can hash: the next output is at worst refused for now (503, retried), never
    failed for good, and a redelivery hashes it (red-team finding on the too-large change)."""
    first = _put(emulator, "out/first.wav", _pattern(8))
    second_data = _pattern(30)
    second = _put(emulator, "out/second.wav", second_data)
    app = make_app()  # HASH_MIB_PER_SECOND 20: 30 MiB take 1.5 s
    context = {"request_id": "r", "time_limit_in_ms": 10000}
    emulator.add_fault(method="GET", key="out/first.wav", query="!", delay=3, times=1)  # the content GET
    status, answer, _ = invoke(app, http_event(first), context)
    assert status == 200 and answer["jobs"][0]["outcome"] == "verified"  # at about 2.7 MiB/s: 11 s for 30 MiB
    answers = []
    for _ in range(3):  # CI's redeliveries
        status, answer, headers = invoke(app, http_event(second), context)
        obj = answer["jobs"][0]["objects"][0]
        answers.append((status, obj["verdict"], obj.get("tooLarge", False)))
        if obj["verdict"] == "verified":
            break
        assert status == 503 and "Retry-After" in headers and not obj.get("tooLarge"), answers
        assert "as this container measured" in obj["reason"] and TOO_LARGE not in obj["reason"]
    assert answers[-1] == (200, "verified", False), answers
    assert emulator.tags(BUCKET, "out/second.wav")["ci-verify"] == "verified"


@pytest.mark.slow
def test_a_slow_read_lowers_the_estimate_at_once(emulator, make_app):
    slow, next_one = _pattern(40), _pattern(64)
    slow_body, next_body = _put(emulator, "out/slow.wav", slow), _put(emulator, "out/next.wav", next_one)
    emulator.limit_bandwidth(4 * MIB)  # 16 MiB/s over four connections
    app = make_app(HASH_MIB_PER_SECOND="2000")  # an optimistic start
    status, answer, _ = invoke(app, http_event(slow_body), {"request_id": "r1", "time_limit_in_ms": 30000})
    assert status == 200 and answer["jobs"][0]["objects"][0]["verdict"] == "verified"
    status, answer, headers = invoke(app, http_event(next_body), {"request_id": "r2", "time_limit_in_ms": 4000})
    obj = answer["jobs"][0]["objects"][0]
    # Not started at the speed measured (4 s for 64 MiB); at HASH_MIB_PER_SECOND it would fit an
    # invocation, so it is refused for now, not for good.
    assert status == 503 and "Retry-After" in headers and obj["verdict"] == "error" and not obj.get("tooLarge")
    assert "as this container measured" in obj["reason"] and "s are left" in obj["reason"]
    assert _gets(emulator, "out/next.wav") == []


@pytest.mark.slow
def test_too_large_for_good_is_decided_at_the_faster_of_the_configured_and_the_learnt_speed(emulator, make_app):
    slow, huge = _pattern(8), _pattern(24)
    slow_body, huge_body = _put(emulator, "out/slow.wav", slow), _put(emulator, "out/huge.wav", huge)
    emulator.limit_bandwidth(4 * MIB)
    app = make_app(HASH_MIB_PER_SECOND="5", PARALLEL_READ_MIN_MB="64")  # one connection each
    status, answer, _ = invoke(app, http_event(slow_body), {"request_id": "r1", "time_limit_in_ms": 30000})
    assert status == 200 and answer["jobs"][0]["objects"][0]["verdict"] == "verified"
    # 24 MiB: 6 s at the 4 MiB/s measured, 4.8 s even at 5 MiB/s, in a 3 s limit.
    status, answer, headers = invoke(app, http_event(huge_body), {"request_id": "r2", "time_limit_in_ms": 3000})
    obj = answer["jobs"][0]["objects"][0]
    assert status == 200 and obj["tooLarge"] is True and "Retry-After" not in headers
    assert "even at HASH_MIB_PER_SECOND (5 MiB/s) that takes about 4.8 s" in obj["reason"]
    assert _gets(emulator, "out/huge.wav") == []


# --- the rules, pure ---------------------------------------------------------------------

def test_a_hash_that_fits_a_fresh_invocation_is_not_called_too_large():
    estimate = HashEstimate(seconds=5.0, mib_per_second=100, measured=True)
    reason, too_large = hash_time_problem(500 * MIB, remaining=3.0, estimate=estimate, budget=29.0)
    assert not too_large and reason.startswith("not enough time to hash") and TOO_LARGE not in reason
    assert hash_time_problem(500 * MIB, remaining=6.0, estimate=estimate, budget=29.0) is None
    reason, too_large = hash_time_problem(500 * MIB, remaining=3.0, estimate=estimate, budget=4.0)
    assert too_large and reason.startswith(TOO_LARGE)


def test_the_estimate_starts_conservative_follows_slower_reads_and_faster_ones_halfway():
    throughput = HashThroughput(20)
    assert throughput.estimate(20 * MIB, "ranged") == HashEstimate(1.0, 20.0, False, 1.0)
    throughput.record(100 * MIB, 0.5, "ranged")  # 200 MiB/s: halfway from 20
    assert throughput.estimate(110 * MIB, "ranged").mib_per_second == 110
    assert throughput.estimate(20 * MIB, "single").measured is False  # learnt apart
    throughput.record(50 * MIB, 1.0, "ranged")  # slower: followed at once
    assert throughput.estimate(50 * MIB, "ranged") == HashEstimate(1.0, 50.0, True, 0.25)  # 200 MiB/s seen
    throughput.record(MIB, 0.001, "ranged")  # too small to say anything
    assert throughput.estimate(50 * MIB, "ranged").mib_per_second == 50
    throughput.skipped("ranged")  # above HASH_MIB_PER_SECOND: a skip changes nothing
    assert throughput.estimate(50 * MIB, "ranged").mib_per_second == 50


def test_a_hash_skipped_on_a_slow_figure_moves_it_back_towards_the_configured_one():
    throughput = HashThroughput(20)
    throughput.record(8 * MIB, 4.0, "single")  # 2 MiB/s: a slow moment
    estimate = throughput.estimate(30 * MIB, "single")
    assert (estimate.seconds, estimate.fastest) == (15.0, 1.5)  # the configured 20 MiB/s decides "for good"
    throughput.skipped("single")
    assert throughput.estimate(30 * MIB, "single").mib_per_second == 11
    throughput.skipped("single")
    assert throughput.estimate(30 * MIB, "single").mib_per_second == 15.5
    throughput.skipped("ranged")  # nothing learnt there
    assert throughput.estimate(30 * MIB, "ranged").measured is False


def test_only_the_faster_speed_may_call_an_object_too_large():
    slow_moment = HashEstimate(seconds=15.0, mib_per_second=2, measured=True, best_seconds=1.5)
    reason, too_large = hash_time_problem(30 * MIB, remaining=9.0, estimate=slow_moment, budget=9.0)
    assert not too_large and "15.0 s and 9.0 s are left" in reason
    reason, too_large = hash_time_problem(30 * MIB, remaining=1.0, estimate=slow_moment, budget=1.0)
    assert too_large and "even at HASH_MIB_PER_SECOND (20 MiB/s) that takes about 1.5 s" in reason


class _Planner:
    """What check_object asks of a store before a hash, with the container's figure learnt as given."""

    def __init__(self, size: int, throughput: HashThroughput):
        self.size, self.throughput = size, throughput

    def head(self, target):
        from datetime import datetime, timezone

        from handlers.intake.models import ObjectState
        return ObjectState("0" * 32 + "-2", self.size, datetime.now(timezone.utc))

    def hash_estimate(self, size):
        return self.throughput.estimate(size, "single")

    def hash_skipped(self, size):
        self.throughput.skipped("single")

    def content_md5(self, target, etag, size=-1):
        raise AssertionError("not started")


def test_only_a_skip_the_configured_speed_would_have_fitted_moves_the_learnt_one_back():
    """Red-team finding: every skip raised the learnt figure, so a container that really reads at
    2 MiB/s, skipping objects too big even at HASH_MIB_PER_SECOND, soon planned at 18 MiB/s."""
    from handlers.checking.verify import check_object
    from handlers.deadline import Deadline
    from handlers.intake.models import OutputObject

    throughput = HashThroughput(20)
    throughput.record(8 * MIB, 4.0, "single")  # 2 MiB/s
    target = OutputObject(BUCKET, REGION, "out/x.wav", "1" * 32)
    deadline = Deadline(time.monotonic() + 10)
    for _ in range(3):  # 300 MiB: 15 s even at 20 MiB/s, with 10 s left
        assert check_object(target, _Planner(300 * MIB, throughput), "auto", None, deadline).verdict.value == "error"
    assert throughput.estimate(MIB, "single").mib_per_second == 2
    # 100 MiB: 5 s at 20 MiB/s would fit; at the 2 MiB/s learnt it is skipped, and the figure recovers.
    assert check_object(target, _Planner(100 * MIB, throughput), "auto", None, deadline).verdict.value == "error"
    assert throughput.estimate(MIB, "single").mib_per_second == 11


def test_a_slow_moment_after_fast_reads_does_not_make_an_object_too_large_for_good():
    """Red-team finding: a container that had read at 200 MiB/s, then once at 5 MiB/s, called a
    3 GiB output (15 s at 200 MiB/s) too large for a 59 s invocation, judging at max(5, 20)."""
    throughput = HashThroughput(20)
    throughput.record(400 * MIB, 2.0, "ranged")  # 200 MiB/s
    throughput.record(50 * MIB, 10.0, "ranged")  # 5 MiB/s: followed at once
    estimate = throughput.estimate(3072 * MIB, "ranged")
    assert estimate.mib_per_second == 5 and estimate.fastest == 3072 / 200
    reason, too_large = hash_time_problem(3072 * MIB, remaining=59.0, estimate=estimate, budget=59.0)
    assert not too_large and reason.startswith("not enough time")
