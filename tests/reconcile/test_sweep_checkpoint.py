"""The checkpointed sweep through the function's entry point, against the emulator: each tick looks at
what is new, tells a done job with one request, holds back for unfinished jobs, says what it left."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import xmltodict

from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from tests.conftest import http_event, invoke, md5
from tests.reconcile.jobs import STATE, TIMER, ci_lists, job_id, output_key, requests_of, seed_job
from tests.samples import BUCKET, REGION, job_xml

CONTEXT = {"request_id": "tick", "time_limit_in_ms": 30000}
CHECKPOINT = f"{STATE}sweep/p{'0' * 32}/VoiceSeparate.checkpoint"


def sweep_app(make_app, **env):
    # One bucket to sweep (conftest's ALLOWED_BUCKETS names a second, absent one).
    return make_app(DEFAULT_REGION=REGION, RECONCILE_BUCKETS=BUCKET, **env)


def checkpoint(emulator) -> dict:
    return json.loads(emulator.object_bytes(BUCKET, CHECKPOINT))


@pytest.mark.slow
def test_callbacks_leave_a_marker_and_the_next_tick_looks_only_at_new_jobs(emulator, make_app):
    app = sweep_app(make_app)
    for n in range(40):  # delivered: each callback writes the job's settled marker
        assert invoke(app, http_event(seed_job(emulator, n, minutes_ago=30)))[0] == 200
    assert len(requests_of(emulator, "PUT", f"{STATE}settled/")) == 40
    emulator.clear_requests()
    first = app.handle(TIMER, CONTEXT)["sweep"]
    assert (first["listed"], first["alreadyDone"], first["checked"], first["stoppedEarly"]) == (40, 40, 0, False)
    # One HEAD per job (its marker), not a tag read per output.
    assert len(requests_of(emulator, "HEAD", f"{STATE}settled/")) == 40
    assert requests_of(emulator, query="tagging") == [] and requests_of(emulator, "HEAD", "out/") == []
    through = checkpoint(emulator)["listedThrough"]

    for n in range(40, 50):  # newer jobs: 5 delivered, 5 lost
        body = seed_job(emulator, n, minutes_ago=1)
        if n % 2:
            invoke(app, http_event(body))
    emulator.clear_requests()
    second = app.handle(TIMER, {**CONTEXT, "request_id": "tick-2"})["sweep"]
    assert (second["listed"], second["alreadyDone"], second["checked"]) == (10, 5, 5)
    [listing] = ci_lists(emulator)
    assert listing.query["startCreationTime"] == through and listing.query["states"] == "All"
    assert len(requests_of(emulator, "HEAD", f"{STATE}settled/")) == 10
    assert all(emulator.tags(BUCKET, output_key(n, o))[VERIFY_TAG] == "verified" for n in range(40, 50) for o in (0, 1))

    emulator.clear_requests()
    third = app.handle(TIMER, {**CONTEXT, "request_id": "tick-3"})["sweep"]
    # The newest jobs are within the checkpoint's edge: listed again, but known, so not one HEAD.
    assert (third["listed"], third["settledBefore"], third["checked"]) == (10, 10, 0)
    assert requests_of(emulator, "HEAD") == []


def test_an_unfinished_job_is_held_by_id_and_looked_at_again_as_ci_reports_it(emulator, make_app):
    app = sweep_app(make_app)
    now = datetime.now(timezone(timedelta(hours=8)))
    seed_job(emulator, 1, minutes_ago=20, state="Running", now=now)
    seed_job(emulator, 2, minutes_ago=10, now=now)  # its callback is lost
    first = app.handle(TIMER, CONTEXT)["sweep"]
    assert (first["unfinished"], first["checked"], first["held"]) == (1, 1, 1)
    document = checkpoint(emulator)
    assert list(document["held"]) == [job_id(1)]
    through = datetime.strptime(document["listedThrough"], "%Y-%m-%dT%H:%M:%S%z")
    assert through > now - timedelta(minutes=3)  # the listing moved on: job 1 is held by id, not by time

    emulator.clear_requests()
    assert app.handle(TIMER, {**CONTEXT, "request_id": "tick-2"})["sweep"]["held"] == 1  # still running
    [describe] = [r for r in emulator.requests if r.service == "ci" and r.key.startswith("jobs/")]
    assert describe.key == f"jobs/{job_id(1)}"
    assert ci_lists(emulator)[0].query["startCreationTime"] == document["listedThrough"]

    seed_job(emulator, 1, minutes_ago=20, now=now)  # it finished; its callback is lost too
    third = app.handle(TIMER, {**CONTEXT, "request_id": "tick-3"})["sweep"]
    assert (third["lookedAgain"], third["listed"], third["checked"], third["held"]) == (1, 0, 1, 0)
    assert emulator.tags(BUCKET, output_key(1))[VERIFY_TAG] == "verified"
    assert checkpoint(emulator)["held"] == {}


@pytest.mark.slow
def test_a_tick_that_runs_out_of_time_says_what_it_left_and_the_next_resumes(emulator, make_app, log_lines):
    for n in range(60):
        seed_job(emulator, n, minutes_ago=30 - n * 0.1)
    app = sweep_app(make_app, CONCURRENCY="2", COS_TIMEOUT_SECONDS="1")
    emulator.add_fault(method="PUT", query="tagging", delay=0.1, times=None)
    ticks = []
    while not ticks or ticks[-1]["stoppedEarly"]:
        ticks.append(app.handle(TIMER, {"request_id": f"tick-{len(ticks)}", "time_limit_in_ms": 4000})["sweep"])
        assert len(ticks) < 30
    assert len(ticks) > 1 and ticks[0]["leftUnchecked"] > 0
    assert sum(t["checked"] for t in ticks) == 60  # none checked twice
    summaries = [json.loads(line) for line in log_lines if '"reconciliation sweep finished"' in line]
    assert [s["level"] for s in summaries] == ["WARNING"] * (len(ticks) - 1) + ["INFO"]
    assert summaries[0]["leftUnchecked"] == ticks[0]["leftUnchecked"]
    # The second tick started where the first stopped, not from the oldest job.
    lists = ci_lists(emulator)
    assert lists[1].query["startCreationTime"] > lists[0].query["startCreationTime"]
    assert all(emulator.tags(BUCKET, output_key(n))[JOB_TAG] == job_id(n) for n in range(60))


def test_the_log_line_stays_one_bounded_line_whatever_the_number_of_jobs(emulator, make_app, log_lines):
    for n in range(250):
        body = seed_job(emulator, n, minutes_ago=10, outputs=1)
        detail = xmltodict.parse(body)["Response"]["JobsDetail"]
        detail["Operation"]["MediaResult"]["OutputFile"]["Md5Info"]["Md5"] = "not-an-md5"
        emulator.register_job(BUCKET, detail)  # CI's own answer cannot be read
    result = sweep_app(make_app).handle(TIMER, CONTEXT)["sweep"]
    assert result["unreadableCount"] == 250 and len(result["unreadable"]) == 3
    [line] = [line for line in log_lines if '"reconciliation sweep finished"' in line]
    assert len(line) < 2000 and json.loads(line)["level"] == "WARNING"


def test_a_list_another_tick_holds_is_left_to_it_and_a_lease_that_ran_out_is_taken(emulator, make_app):
    seed_job(emulator, 1, minutes_ago=10)
    lease = CHECKPOINT.removesuffix(".checkpoint") + ".lease"
    later = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S%z")
    emulator.put_object(BUCKET, lease, json.dumps({"holder": "other-tick", "until": later}).encode())
    app = sweep_app(make_app)
    busy = app.handle(TIMER, CONTEXT)["sweep"]
    assert (busy["busyCount"], busy["listed"], busy["stoppedEarly"]) == (1, 0, False)
    assert "other-tick" in busy["busy"][0] and ci_lists(emulator) == []
    assert emulator.object_bytes(BUCKET, CHECKPOINT) is None

    earlier = (datetime.now(timezone.utc) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S%z")
    emulator.put_object(BUCKET, lease, json.dumps({"holder": "other-tick", "until": earlier}).encode())
    taken = app.handle(TIMER, {**CONTEXT, "request_id": "tick-2"})["sweep"]
    assert (taken["busyCount"], taken["checked"]) == (0, 1)
    assert emulator.object_bytes(BUCKET, lease) is None  # released


def test_a_checkpoint_an_operator_broke_is_reported_and_written_anew(emulator, make_app, log_lines):
    seed_job(emulator, 1, minutes_ago=10)
    emulator.put_object(BUCKET, CHECKPOINT, b"{ half an edit")
    result = sweep_app(make_app).handle(TIMER, CONTEXT)["sweep"]
    assert result["checked"] == 1 and result["errorCount"] == 1 and "cannot be read" in result["errors"][0]
    written = checkpoint(emulator)
    assert written["version"] == 2 and written["tag"] == "VoiceSeparate" and written["updatedBy"] == "tick"


def test_a_job_settled_long_ago_is_not_checked_again_after_the_window_moves(emulator, make_app):
    """Ticks with an hour's window: the checkpoint never goes back past what it settled."""
    app = sweep_app(make_app, RECONCILE_WINDOW_MINUTES="60")
    seed_job(emulator, 1, minutes_ago=50)
    assert app.handle(TIMER, CONTEXT)["sweep"]["checked"] == 1
    emulator.clear_requests()
    again = app.handle(TIMER, {**CONTEXT, "request_id": "tick-2"})["sweep"]
    assert (again["listed"], again["checked"]) == (0, 0)
    assert requests_of(emulator, "HEAD") == [] and requests_of(emulator, query="tagging") == []


def test_a_later_job_writing_a_settled_jobs_output_again_has_the_earlier_one_looked_at_again(emulator, make_app):
    """Settled jobs are not looked at again, but when the sweep lists a job writing an output of an
    earlier one, the earlier job's report would name bytes that are gone: it is checked once more."""
    app = sweep_app(make_app, REPORT_PREFIX="reports/")
    invoke(app, http_event(seed_job(emulator, 1, minutes_ago=20, outputs=1)))
    assert app.handle(TIMER, CONTEXT)["sweep"]["alreadyDone"] == 1
    now = datetime.now(timezone(timedelta(hours=8)))
    data = b"job 2 wrote this"
    emulator.put_object(BUCKET, output_key(1), data)  # job 2, later, writes job 1's output again
    created = now - timedelta(seconds=30)  # after the first tick (CI lists a job from its creation on)
    times = tuple(t.strftime("%Y-%m-%dT%H:%M:%S%z") for t in (created, created, now))
    body = job_xml(md5s={output_key(1): md5(data)}, names=[], job_id=job_id(2), times=times)
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])  # its callback is lost
    tick = app.handle(TIMER, {**CONTEXT, "request_id": "tick-2"})["sweep"]
    assert (tick["checked"], tick["rechecked"]) == (2, 1)
    first = json.loads(emulator.object_bytes(BUCKET, f"reports/{job_id(1)}.json"))
    assert [o["verdict"] for o in first["objects"]] == ["superseded"]
    assert emulator.tags(BUCKET, output_key(1)) == {VERIFY_TAG: "verified", JOB_TAG: job_id(2)}
