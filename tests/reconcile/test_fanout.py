"""Undone jobs beyond what a tick can check in good time go to asynchronous invocations of the function
(SCF's Invoke, through the SCF emulator), in batches each finishes well inside its own time limit."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from handlers.intake.events import WORKER_KEY
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.scf import ScfEmulator
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN
from tests.reconcile.jobs import STATE, TIMER, ci_lists, job_id, output_key, requests_of, seed_job
from tests.samples import BUCKET, REGION

NAME = "ci-callback-verifier"
LIMIT_MS = 6000
CHECKPOINT = f"{STATE}sweep/p{'0' * 32}/VoiceSeparate.checkpoint"


def context(request_id: str) -> dict:
    return {"function_name": NAME, "namespace": "default", "function_version": "$LATEST", "request_id": request_id,
            "time_limit_in_ms": LIMIT_MS}


@pytest.fixture
def scf():
    with ScfEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, region=REGION) as emu:
        yield emu


def env(scf, **more) -> dict:
    return {"DEFAULT_REGION": REGION, "RECONCILE_BUCKETS": BUCKET, "SCF_ENDPOINT": scf.endpoint, **more}


@pytest.mark.slow
def test_a_backlog_is_handed_to_workers_and_verified_within_their_limits(emulator, scf, make_app):
    for n in range(150):
        seed_job(emulator, n, minutes_ago=30 - n * 0.1, outputs=1)  # every callback lost
    tick, worker = make_app(**env(scf)), make_app(**env(scf))
    scf.register_function(NAME, worker.handle, timeout=LIMIT_MS / 1000, retries=2, retry_delay=0.05)
    started = datetime.now(timezone.utc)
    result = tick.handle(TIMER, context("tick-1"))["sweep"]
    took = (datetime.now(timezone.utc) - started).total_seconds()
    assert took < LIMIT_MS / 1000
    # On a loaded machine the tick may run out of time before it has placed every job: it then says how many
    # it left (a WARNING the alarm fires on), and the next tick resumes with them.
    left = result["leftUnchecked"]
    assert result["workers"] > 0 and result["handedOff"] + result["checked"] + left == 150
    assert result["stoppedEarly"] == bool(left)
    assert result["workers"] <= 20  # RECONCILE_WORKERS
    scf.wait_idle(timeout=60)
    invocations = scf.invocations
    assert len(invocations) == result["workers"]
    for invocation in invocations:
        assert invocation.status == "succeeded", invocation.error
        assert (invocation.finished_at - invocation.started_at) < LIMIT_MS / 1000  # within its own limit
        order = invocation.payload[WORKER_KEY]["reconcile"]
        assert len(json.dumps(invocation.payload)) <= 128 * 1024 and order["handedOffBy"] == "tick-1"
    handed = [i for inv in invocations for i in inv.payload[WORKER_KEY]["reconcile"]["jobIds"]]
    assert len(handed) == len(set(handed)) == result["handedOff"]
    verified = [n for n in range(150)
                if emulator.tags(BUCKET, output_key(n)) == {VERIFY_TAG: "verified", JOB_TAG: job_id(n)}]
    assert len(verified) == 150 - left
    # Each output was tagged once: no job was checked by two invocations.
    assert len(requests_of(emulator, "PUT", "out/", query="tagging")) == 150 - left
    # Workers read the jobs back from CI, ten ids at a time; the tick never asks CI for a job it listed.
    describes = [r for r in emulator.requests if r.service == "ci" and r.key.startswith("jobs/")]
    assert sum(len(r.key[len("jobs/"):].split(",")) for r in describes) == result["handedOff"]
    assert all(len(r.key[len("jobs/"):].split(",")) <= 10 for r in describes)

    emulator.clear_requests()
    second = tick.handle(TIMER, context("tick-2"))["sweep"]  # the workers reported back through their markers
    # The handed-off jobs were held by id: one HEAD each finds their marker.
    assert second["alreadyDone"] >= result["handedOff"]
    if not left:
        # Nothing is listed again, nothing is left to check.
        assert (second["listed"], second["checked"], second["handedOff"], second["held"]) == (0, 0, 0, 0)
    for number in range(3, 8):  # what tick-1 left (a loaded machine) is resumed, fanned out again if need be
        scf.wait_idle(timeout=60)
        if all(emulator.tags(BUCKET, output_key(n)) == {VERIFY_TAG: "verified", JOB_TAG: job_id(n)}
               for n in range(150)):
            break
        tick.handle(TIMER, context(f"tick-{number}"))
    assert all(emulator.tags(BUCKET, output_key(n)) == {VERIFY_TAG: "verified", JOB_TAG: job_id(n)}
               for n in range(150))
    if left:
        tick.handle(TIMER, context("tick-last"))
    assert json.loads(emulator.object_bytes(BUCKET, CHECKPOINT))["handedOff"] == {}


@pytest.mark.slow
def test_a_lost_worker_invocation_keeps_its_jobs_until_their_time_runs_out(emulator, scf, make_app):
    for n in range(80):
        seed_job(emulator, n, minutes_ago=30 - n * 0.1, outputs=1)
    tick = make_app(**env(scf))
    scf.register_function(NAME, lambda event, ctx: {"lost": True}, timeout=LIMIT_MS / 1000)  # drops the batch
    first = tick.handle(TIMER, context("tick-1"))["sweep"]
    assert first["handedOff"] > 0
    scf.wait_idle(timeout=30)
    second = tick.handle(TIMER, context("tick-2"))["sweep"]
    # In the workers' hands until their time (and SCF's retries) could have run out: not handed again.
    assert (second["inHands"], second["handedOff"]) == (first["handedOff"], 0)
    # An operator (or time) ends the hand-off: the next tick takes the jobs up again.
    document = json.loads(emulator.object_bytes(BUCKET, CHECKPOINT))
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S%z")
    for hand_off in document["handedOff"].values():
        hand_off["until"] = past
    emulator.put_object(BUCKET, CHECKPOINT, json.dumps(document).encode())
    worker = make_app(**env(scf))
    scf.register_function(NAME, worker.handle, timeout=LIMIT_MS / 1000)
    third = tick.handle(TIMER, context("tick-3"))["sweep"]
    assert third["inHands"] == 0 and third["checked"] + third["handedOff"] == first["handedOff"]
    scf.wait_idle(timeout=60)
    assert all(emulator.tags(BUCKET, output_key(n)).get(VERIFY_TAG) == "verified" for n in range(80))


def test_a_forged_or_foreign_batch_is_refused_without_a_request(emulator, make_app):
    app = make_app(DEFAULT_REGION=REGION, RECONCILE_BUCKETS=BUCKET)
    emulator.clear_requests()
    for order in ({"bucket": "other-1250000000", "region": REGION, "jobIds": [job_id(1)]},
                  {"bucket": BUCKET, "region": REGION, "jobIds": "j1"},
                  {"bucket": BUCKET, "region": REGION, "jobIds": [job_id(n) for n in range(1001)]}):
        result = app.handle({WORKER_KEY: {"version": 1, "reconcile": order}}, {"time_limit_in_ms": 5000})
        assert "refused" in result
    assert emulator.requests == []


def test_a_batch_names_only_job_ids_and_what_ci_does_not_know_is_skipped(emulator, make_app):
    seed_job(emulator, 1, minutes_ago=5, outputs=1)
    app = make_app(DEFAULT_REGION=REGION, RECONCILE_BUCKETS=BUCKET)
    order = {"bucket": BUCKET, "region": REGION, "queueId": "p" + "0" * 32, "tag": "VoiceSeparate",
             "jobIds": [job_id(1), job_id(2)]}
    result = app.handle({WORKER_KEY: {"version": 1, "reconcile": order}}, {"time_limit_in_ms": 10000})
    assert result["reconcile"]["unknownToCi"] == 1 and result["reconcile"]["settled"] == 1
    assert emulator.tags(BUCKET, output_key(1))[VERIFY_TAG] == "verified"
    assert ci_lists(emulator) == []
