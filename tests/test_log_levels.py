"""Log levels carry meaning: a CLS alarm on the level (or on the per-verdict counts) finds the problems."""
from __future__ import annotations

import json

import pytest

from handlers.storage.tags import VERIFY_TAG
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, job_xml
from tests.scenarios.test_never_miss import TIMER, register


def lines(log_lines: list[str], message: str) -> list[dict]:
    return [entry for entry in map(json.loads, log_lines) if entry["message"] == message]


def test_object_checked_is_logged_at_the_level_of_its_verdict(emulator, app, log_lines):
    emulator.put_object(BUCKET, "out/good.mp3", b"good")
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    body = job_xml(md5s={"out/good.mp3": md5(b"good"), "out/bad.mp3": md5(b"expected"),
                         "out/gone.mp3": md5(b"gone")}, names=[])
    status, _, _ = invoke(app, http_event(body))
    assert status == 200
    levels = {entry["key"]: (entry["level"], entry["verdict"]) for entry in lines(log_lines, "object checked")}
    assert levels == {"out/good.mp3": ("INFO", "verified"), "out/bad.mp3": ("WARNING", "mismatch"),
                      "out/gone.mp3": ("WARNING", "missing")}


def test_job_processed_counts_every_verdict_beside_the_outcome(emulator, app, log_lines):
    emulator.put_object(BUCKET, "out/good.mp3", b"good")
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    body = job_xml(md5s={"out/good.mp3": md5(b"good"), "out/bad.mp3": md5(b"expected"),
                         "out/gone.mp3": md5(b"gone")}, names=[])
    invoke(app, http_event(body))
    (job,) = lines(log_lines, "job processed")
    assert job["outcome"] == "failed" and job["level"] == "WARNING" and job["objects"] == 3
    assert {k: job[k] for k in ("verified", "mismatch", "missing", "unverifiable", "superseded", "error")} == \
        {"verified": 1, "mismatch": 1, "missing": 1, "unverifiable": 0, "superseded": 0, "error": 0}


@pytest.mark.slow
def test_an_object_that_could_not_be_checked_is_an_error(emulator, app, log_lines):
    emulator.put_object(BUCKET, "out/a.mp3", b"a")
    emulator.add_fault(method="HEAD", key="out/a.mp3", status=503, times=None)
    status, answer, _ = invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(b"a")}, names=[])))
    assert status == 503 and answer["jobs"][0]["objects"][0]["verdict"] == "error"
    (checked,) = lines(log_lines, "object checked")
    assert checked["level"] == "ERROR"
    (job,) = lines(log_lines, "job processed")
    assert job["level"] == "ERROR" and job["outcome"] == "retry" and job["error"] == 1 and job["verified"] == 0


def test_a_verified_job_logs_nothing_above_info(emulator, app, log_lines):
    emulator.put_object(BUCKET, "out/a.mp3", b"a")
    invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(b"a")}, names=[])))
    assert emulator.tags(BUCKET, "out/a.mp3")[VERIFY_TAG] == "verified"
    assert {entry["level"] for entry in map(json.loads, log_lines)} == {"INFO"}


@pytest.mark.slow
def test_the_sweep_summary_is_a_warning_when_it_had_errors(emulator, make_app, log_lines):
    emulator.put_object(BUCKET, "out/s.mp3", b"s")
    register(emulator, job_xml(md5s={"out/s.mp3": md5(b"s")}, names=[]))
    app = make_app(DEFAULT_REGION="ap-chongqing")
    app.handle(TIMER, {"time_limit_in_ms": 30000})
    (clean,) = lines(log_lines, "reconciliation sweep finished")
    assert clean["level"] == "INFO" and clean["errors"] == []
    emulator.add_fault(service="ci", key="queue", status=500, times=None)  # the bucket's queues cannot be listed
    app.handle(TIMER, {"time_limit_in_ms": 30000})
    troubled = lines(log_lines, "reconciliation sweep finished")[-1]
    assert troubled["level"] == "WARNING" and troubled["errors"]
