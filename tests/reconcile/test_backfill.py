"""The backfill: a period of history checked as the sweep checks its window, from the command line
(`dev.py reconcile`) or as an event to the deployed function; resumable from its checkpoint."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from handlers.backfill import main
from handlers.intake.events import WORKER_KEY
from handlers.reconcile.backfill import backfill_order
from handlers.storage.tags import JOB_TAG
from localcloud.runner import ROOT
from localcloud.scf import ScfEmulator
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, function_env, http_event, invoke
from tests.reconcile.jobs import STATE, ci_lists, job_id, output_key, requests_of, seed_job
from tests.samples import BUCKET, REGION

DAY = 24 * 60


def history(emulator, make_app, days: int = 10) -> None:
    """A job every 6 hours for `days` days: most callbacks lost, every fourth delivered, one corrupt."""
    app = make_app(DEFAULT_REGION=REGION, RECONCILE_BUCKETS=BUCKET)
    for n in range(days * 4):
        body = seed_job(emulator, n, minutes_ago=(days * 4 - n) * 360 - 30, corrupt=(n == 5))
        if n % 4 == 0:
            invoke(app, http_event(body))


def run(emulator, *args: str, **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--bucket", BUCKET, "--region", REGION, *args], function_env(emulator, **env), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_a_period_of_history_is_checked_and_summarised(emulator, make_app):
    history(emulator, make_app)
    emulator.clear_requests()
    code, out, err = run(emulator, "--since", "11d", "--format", "json")
    assert code == 1  # the corrupt output: a mismatch, as the report command says
    summary = json.loads(out)
    assert summary["objects"] == {"mismatch": 2, "verified": 78}
    assert all(emulator.tags(BUCKET, output_key(n, o))[JOB_TAG] == job_id(n) for n in range(40) for o in (0, 1))
    assert "round 1: listed 40, already done 10, checked 30" in err
    # Listed a day at a time (DescribeMediaJobs documents no longest period), each list strictly bounded.
    lists = ci_lists(emulator)
    assert len(lists) >= 11 and lists[0].query["states"] == "All"
    # The delivered ones cost one HEAD each; only the lost ones were checked.
    assert len(requests_of(emulator, "PUT", "out/", query="tagging")) == 60


@pytest.mark.slow
def test_an_interrupted_backfill_resumes_where_it_stopped(emulator, make_app):
    history(emulator, make_app)
    emulator.clear_requests()
    # CI answers the first four list requests, then fails every one: the first run cannot finish.
    emulator.add_fault(service="ci", method="GET", key="jobs", delay=0.001, times=4)
    emulator.add_fault(service="ci", method="GET", key="jobs", status=503, times=None)
    code, _, err = run(emulator, "--since", "11d", "--round-seconds", "10")
    assert code == 3 and "run the same command again to resume" in err
    checked_first = {r.key for r in requests_of(emulator, "PUT", "out/", query="tagging")}
    assert 0 < len(checked_first) < 60
    document = json.loads(emulator.object_bytes(BUCKET, f"{STATE}backfill/p{'0' * 32}/VoiceSeparate.checkpoint"))
    emulator.clear_faults()
    emulator.clear_requests()
    code, _, err = run(emulator, "--since", "11d")
    assert code == 1 and "round 1:" in err
    assert ci_lists(emulator)[0].query["startCreationTime"] == document["listedThrough"]
    checked_again = {r.key for r in requests_of(emulator, "PUT", "out/", query="tagging")}
    assert checked_first.isdisjoint(checked_again) and len(checked_first | checked_again) == 60


def test_usage_errors_are_said_and_nothing_is_read(emulator):
    code, _, err = run(emulator, "--since", "yesterday")
    assert code == 2 and "--since" in err
    assert emulator.requests == []


def test_dev_py_reconcile_runs_it(emulator, make_app):
    history(emulator, make_app, days=2)
    env = {"PATH": "/usr/bin:/bin", **function_env(emulator), "DEFAULT_REGION": REGION}
    done = subprocess.run([sys.executable, str(ROOT / "dev.py"), "reconcile", "--bucket", BUCKET, "--since", "3d"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]  # job 5's outputs mismatch
    assert "round 1: listed 8, already done 2, checked 6" in done.stderr
    assert "objects by verdict" in done.stdout and "mismatch" in done.stdout


@pytest.fixture
def scf():
    with ScfEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, region=REGION) as emu:
        yield emu


@pytest.mark.slow
def test_the_deployed_function_runs_a_backfill_round_after_round_with_its_workers(emulator, scf, make_app):
    history(emulator, make_app, days=6)
    env = {"DEFAULT_REGION": REGION, "RECONCILE_BUCKETS": BUCKET, "SCF_ENDPOINT": scf.endpoint}
    function = make_app(**env)
    scf.register_function("ci-callback-verifier", function.handle, timeout=4, retries=2, retry_delay=0.05)
    # A slow job list: one invocation cannot read the seven days' lists, so it invokes itself to go on.
    emulator.add_fault(service="ci", method="GET", key="jobs", delay=0.5, times=None)
    context = {"function_name": "ci-callback-verifier", "namespace": "default", "function_version": "$LATEST",
               "request_id": "operator", "time_limit_in_ms": 4000}
    first = function.handle(backfill_order(BUCKET, "7d"), context)
    assert first["round"] == 1 and not first["finished"] and first["continuedBy"]
    scf.wait_idle(timeout=120)
    assert all(emulator.tags(BUCKET, output_key(n, o)).get(JOB_TAG) == job_id(n) for n in range(24) for o in (0, 1))
    rounds = [i for i in scf.invocations if "backfill" in i.payload[WORKER_KEY]]
    assert rounds and rounds[-1].result["finished"] and rounds[0].request_id == first["continuedBy"]
    for invocation in scf.invocations:
        assert invocation.status == "succeeded", invocation.error
        assert invocation.finished_at - invocation.started_at < 4.0  # every invocation within its limit
    # The period is fixed by the first round: every round lists the same end.
    ends = {r.query["endCreationTime"] for r in ci_lists(emulator)}
    assert len({e for e in ends}) <= 8


def test_a_backfill_order_for_a_bucket_not_allowed_is_refused(emulator, make_app):
    app = make_app(DEFAULT_REGION=REGION)
    result = app.handle(backfill_order("other-1250000000", "5d"), {"time_limit_in_ms": 5000})
    assert "ALLOWED_BUCKETS" in result["refused"] and emulator.requests == []
