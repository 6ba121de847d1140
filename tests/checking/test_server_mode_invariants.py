"""VERIFY_MODE=server keeps DESIGN.md's invariants on every path (callback, hash callback, replay, sweep tick):
an earlier move is recognised without reading its bytes again, and a check that cannot finish is `error`,
never `missing`; the billed hash jobs per object version are bounded; no tag of ours lands on a version
written after its job ended; `pending` never outlives the hash it announces.

A FileHashCode job is made to happen without writing 128 MB: CI's synchronous hash refuses the object as it
refuses one of 128 MB or more (400 InvalidArgument), and the function then submits a file job, the path of a
large output."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import xmltodict

from handlers.checking.pending import HASH_JOB_TAG
from handlers.config import ConfigError
from handlers.settings import Settings
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.cos.file_jobs import ARCHIVED, FileJobCallback
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, function_env, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

JOB = "j0000000000000000000000000000001"
LATER = "j0000000000000000000000000000002"
DATA = b"voice track " * 200_000  # 2.4 MB uploaded in parts: its ETag is not its MD5
HOOK = "https://fn.example/cb?token=test-token"
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}
CONTEXT = {"request_id": "test-request", "time_limit_in_ms": 30000}
OWN_RECORDS = ("reports/", ".ci-callback-verifier/")


@pytest.fixture
def posted(emulator) -> list[FileJobCallback]:
    """The FileHashCode callbacks CI would post, held for the test to deliver (or lose)."""
    held: list[FileJobCallback] = []
    emulator.callback_sink = held.append
    return held


def server_app(make_app, **env: str):
    return make_app(VERIFY_MODE="server", HASH_CALLBACK_URL=HOOK, DEFAULT_REGION=REGION, **env)


def refuse_sync_hash(emulator) -> None:
    emulator.add_fault(method="GET", query="ci-process", status=400, code="InvalidArgument", times=None)


def put_output(emulator, key: str = "out/big.wav", data: bytes = DATA, **kwargs) -> str:
    return emulator.put_object(BUCKET, key, data, part_size=1 << 20, **kwargs)


def callback_for(posted: list[FileJobCallback], key: str) -> FileJobCallback:
    [found] = [c for c in posted if xmltodict.parse(c.body)["Response"]["JobsDetail"]["Input"]["Object"] == key]
    return found


def deliver(app, callback: FileJobCallback):
    return invoke(app, http_event(callback.body, callback.content_type))


def object_reads(emulator) -> list:
    """GET Object requests for outputs or their moved copies (not the function's own records)."""
    return [r for r in emulator.requests if r.service == "cos" and r.method == "GET" and r.key
            and not r.key.startswith(OWN_RECORDS) and not {"tagging", "ci-process"} & set(r.query)]


def output_writes(emulator) -> list:
    return [r for r in emulator.requests if r.is_write and not r.key.startswith(OWN_RECORDS)]


def report_exit_code(emulator, *args: str) -> int:
    from handlers.operations.report_command.command import main as report_command
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint}
    return report_command(["--bucket", BUCKET, "--region", REGION, *args], env, io.StringIO(), io.StringIO())


def ended(minutes_ago: float) -> tuple[str, str, str]:
    end = datetime.now(timezone(timedelta(hours=8))) - timedelta(minutes=minutes_ago)
    return tuple((end - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S%z") for s in (6, 5, 0))  # type: ignore[return-value]


# --- 1. an earlier move is recognised without its bytes; never `missing` -----------------------------

def test_a_quarantined_output_is_recognised_by_its_tags_on_replay_and_sweep_not_read_nor_missing(
        emulator, make_app, posted):
    """Issue 19, defect 1: after its hash callback quarantined it, a replay of that callback, and a sweep tick
    re-running the job for its other (pending) output, re-hashed the quarantined copy inside the function; when
    that could not finish the output was reported `missing`. Failed before the fix: verdict `missing`."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    put_output(emulator, "out/voice.wav", DATA + b"!")
    body = job_xml({"out/big.wav": md5(b"what CI wrote"), "out/voice.wav": md5(DATA + b"!")}, [])
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    app = server_app(make_app, ACTION_FAILED="tag,move", REPORT_PREFIX="reports/")
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    big = callback_for(posted, "out/big.wav")  # out/voice.wav's callback is lost: it stays pending
    status, result, _ = deliver(app, big)
    obj = result["jobs"][0]["objects"][0]
    assert status == 200 and (obj["verdict"], obj["actions"]) == ("mismatch", ["tagged", "moved:quarantine/out/big.wav"])
    quarantined = emulator.object_info(BUCKET, "quarantine/out/big.wav")["etag"]

    # From now on the quarantined bytes cannot be read (a slow or failing read: the check cannot finish).
    emulator.add_fault(method="GET", key="quarantine/out/big.wav", query="!", status=503, times=None)
    emulator.clear_requests()
    status, result, _ = deliver(app, big)  # CI delivers the hash callback again
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"], obj["actions"][-1:]) == (200, "mismatch", ["moved:quarantine/out/big.wav"])
    assert obj["etag"] == quarantined
    tick = app.handle(TIMER, CONTEXT)["sweep"]  # out/voice.wav is still pending: the tick re-runs the job
    assert (tick["checked"], tick["outcomes"], tick["errors"]) == (1, ["failed"], [])
    report = json.loads(emulator.object_bytes(BUCKET, f"reports/{JOB}.json"))
    entries = {o["key"]: (o["verdict"], o.get("etag")) for o in report["objects"]}
    assert entries["out/big.wav"] == ("mismatch", quarantined) and entries["out/voice.wav"][0] == "verified"
    assert object_reads(emulator) == []  # not one byte of the quarantined copy asked for
    assert emulator.tags(BUCKET, "quarantine/out/big.wav")[VERIFY_TAG] == "mismatch"


def test_a_verified_copy_made_in_parts_is_recognised_on_replay_without_reading_it(emulator, make_app, posted):
    """Issue 19, defect 1 (\"the same happens to verified copies made in parts\"): a copy made in parts has an
    ETag that is not its MD5, and recognising it hashed it in full inside the function. Failed before the fix:
    the replay read the copy's bytes."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    body = job_xml({"out/big.wav": md5(DATA)}, [])
    app = server_app(make_app, ACTION_VERIFIED="tag,move", MULTIPART_COPY_THRESHOLD_MB="2", COPY_PART_MB="1")
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    assert status == 200 and result["jobs"][0]["objects"][0]["actions"] == ["tagged", "moved:verified/out/big.wav"]
    copy_etag = emulator.object_info(BUCKET, "verified/out/big.wav")["etag"]
    assert copy_etag != md5(DATA)  # made in parts: its ETag does not say its MD5
    emulator.clear_requests()
    status, result, _ = invoke(app, http_event(body))  # the media job's callback again
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"], obj["actions"][-1:], obj["etag"]) == (200, "verified",
                                                                         ["moved:verified/out/big.wav"], copy_etag)
    assert object_reads(emulator) == [] and output_writes(emulator) == []


@pytest.mark.slow
def test_an_earlier_move_that_cannot_be_confirmed_is_an_error_never_missing(emulator, make_app):
    """Without our verdict tags on the destination (ACTION_FAILED=move) only the bytes can tell it is this
    job's quarantined object; when they cannot be read, the output is `error` (retry), not `missing`."""
    put_output(emulator, data=b"corrupt")
    app = make_app(ACTION_FAILED="move", QUARANTINE_PREFIX="quarantine/{jobId}/{key}")
    body = job_xml({"out/big.wav": md5(b"what CI wrote")}, [])
    first = invoke(app, http_event(body))[1]["jobs"][0]["objects"][0]
    assert first["actions"] == [f"moved:quarantine/{JOB}/out/big.wav"]
    emulator.add_fault(method="GET", key=f"quarantine/{JOB}/out/big.wav", query="!", status=503, times=None)
    status, result, headers = invoke(app, http_event(body), {"time_limit_in_ms": 4000})
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"]) == (503, "error") and "Retry-After" in headers


def test_a_quarantine_by_move_alone_is_recognised_by_its_hash_job_without_reading_it(emulator, make_app, posted):
    """Red team D2: with ACTION_FAILED=move (no verdict tag on the copy) and no REPORT_PREFIX, only the copy's
    `ci-job` and `ci-hash-job` tags say whose move it was; a replay hashed the quarantined copy inside the
    function, and answered 503 for as long as that copy could not be read. Failed before the fix: (503, error)
    on the replay of the hash callback. Now the file job the copy names is asked for: its ticket names this job
    and key, and its MD5 decides."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    body = job_xml({"out/big.wav": md5(b"what CI wrote")}, [])
    app = server_app(make_app, ACTION_FAILED="move", ACTION_VERIFIED="tag")
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    big = posted.pop()
    status, result, _ = deliver(app, big)
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"], obj["actions"]) == (200, "mismatch", ["moved:quarantine/out/big.wav"])
    copy_tags = emulator.tags(BUCKET, "quarantine/out/big.wav")
    assert VERIFY_TAG not in copy_tags and copy_tags[JOB_TAG] == JOB and copy_tags[HASH_JOB_TAG]

    emulator.add_fault(method="GET", key="quarantine/out/big.wav", query="!", status=503, times=None)
    emulator.clear_requests()
    for replay in (lambda: deliver(app, big), lambda: invoke(app, http_event(body))):  # hash callback, media's
        status, result, _ = replay()
        obj = result["jobs"][0]["objects"][0]
        assert (status, obj["verdict"], obj["actions"]) == (200, "mismatch", ["moved:quarantine/out/big.wav"]), obj
    assert object_reads(emulator) == [] and output_writes(emulator) == []
    assert emulator.tags(BUCKET, "quarantine/out/big.wav") == copy_tags and emulator.file_jobs_created == 1


# --- 2. the hash jobs per object version are bounded ---------------------------------------------------

@pytest.mark.parametrize("actions", [{}, {"ACTION_VERIFIED": "move", "ACTION_FAILED": "move"}],
                         ids=["tags", "no-tags"])
def test_a_file_job_ci_cannot_run_ends_in_error_after_a_bounded_number_of_jobs(emulator, make_app, posted,
                                                                                actions):
    """Issue 19, defect 2: every Failed hash callback, replay and sweep tick submitted another billed job for the
    same unchanged version, and the output stayed `pending` (200). Failed before the fix: a third job."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    emulator.fail_file_jobs(BUCKET, "out/big.wav")  # archived: CI cannot hash it
    body = job_xml({"out/big.wav": md5(DATA)}, [])
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    app = server_app(make_app, **actions)  # HASH_JOBS_PER_VERSION: 2 by default
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    first = posted.pop()
    status, result, _ = deliver(app, first)  # the first failed: a second is started (CI may have hiccuped)
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"], emulator.file_jobs_created) == (200, "pending", 2)
    assert "InvalidObjectState" in obj["reason"]
    emulator.wait_for_file_jobs()
    second = posted.pop()
    status, result, headers = deliver(app, second)  # failed again: no third
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"]) == (503, "error") and "Retry-After" in headers
    assert ARCHIVED[0] in obj["reason"] and ARCHIVED[1].rstrip(".") in obj["reason"] and "HASH_JOBS_PER_VERSION" in obj["reason"]
    assert VERIFY_TAG not in emulator.tags(BUCKET, "out/big.wav")  # no `pending` once no job runs

    # Replays of each callback, of the media job's, and sweep ticks: the same error, no job.
    for again in (first, second):
        assert deliver(app, again)[1]["jobs"][0]["objects"][0]["verdict"] == "error"
    assert invoke(app, http_event(body))[1]["jobs"][0]["objects"][0]["verdict"] == "error"
    for _ in range(2):
        tick = app.handle(TIMER, CONTEXT)["sweep"]
        assert tick["outcomes"] == ["retry"]
    emulator.wait_for_file_jobs()
    assert emulator.file_jobs_created == 2 and posted == []


def test_a_failed_file_job_is_an_error_at_once_with_a_bound_of_one(emulator, make_app, posted):
    refuse_sync_hash(emulator)
    put_output(emulator)
    emulator.fail_file_jobs(BUCKET, "out/big.wav", ("InternalError", "hashing failed"))
    app = server_app(make_app, HASH_JOBS_PER_VERSION="1")
    invoke(app, http_event(job_xml({"out/big.wav": md5(DATA)}, [])))
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"]) == (503, "error") and "InternalError hashing failed" in obj["reason"]
    assert emulator.file_jobs_created == 1


@pytest.mark.parametrize("actions", [{}, {"ACTION_VERIFIED": "move", "ACTION_FAILED": "move"}],
                         ids=["tags", "no-tags"])
def test_no_hash_job_starts_that_the_record_of_hash_jobs_cannot_count(emulator, make_app, posted, actions):
    """Red team D1: the role may not write `<prefix>hash-jobs/` (PutObject denied there). The record was written
    after CI accepted the job and its failure only noted, so every Failed callback started another billed job:
    failed before the fix with 5 FileHashCode jobs for one version in 4 deliveries. Now the record is reserved
    before a job is submitted; when it cannot be written no job starts and the output is `error` (503), naming
    the permission."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    emulator.fail_file_jobs(BUCKET, "out/big.wav")
    emulator.add_fault(method="PUT", key=re.compile(r"hash-jobs/"), status=403, code="AccessDenied", times=None)
    body = job_xml({"out/big.wav": md5(DATA)}, [])
    app = server_app(make_app, **actions)
    for _ in range(3):  # CI's retries of the callback: each one the same, none billed
        status, result, headers = invoke(app, http_event(body))
        obj = result["jobs"][0]["objects"][0]
        assert (status, obj["verdict"]) == (503, "error") and "Retry-After" in headers
        assert "cos:PutObject" in obj["reason"] and ".ci-callback-verifier/hash-jobs/" in obj["reason"]
    emulator.wait_for_file_jobs()
    assert (emulator.file_jobs_created, posted) == (0, [])
    assert VERIFY_TAG not in (emulator.tags(BUCKET, "out/big.wav") or {})
    assert output_writes(emulator) == []

    emulator.clear_faults()  # the permission granted: the bound applies as ever
    refuse_sync_hash(emulator)
    assert invoke(app, http_event(body))[1]["jobs"][0]["objects"][0]["verdict"] == "pending"
    for _ in range(3):
        emulator.wait_for_file_jobs()
        if posted:
            deliver(app, posted.pop())
    emulator.wait_for_file_jobs()
    assert emulator.file_jobs_created == 2


def test_hash_jobs_per_version_is_read_and_validated(emulator):
    assert Settings.from_env(function_env(emulator)).hash_jobs_per_version == 2
    assert Settings.from_env(function_env(emulator, HASH_JOBS_PER_VERSION="3")).hash_jobs_per_version == 3
    for bad in ("0", "11", "two"):
        with pytest.raises(ConfigError) as error:
            Settings.from_env(function_env(emulator, HASH_JOBS_PER_VERSION=bad))
        assert "HASH_JOBS_PER_VERSION" in str(error.value)


# --- 3. no tag of ours on a version written after the job ended ----------------------------------------

def test_a_sweep_rerun_of_an_earlier_job_leaves_a_later_jobs_object_alone(emulator, make_app, posted):
    """Issue 19, defect 3: J1 ended ten minutes ago; J2 rewrote its key since and verified it. The sweep re-ran
    J1, and the server path tagged J2's object `pending`, `ci-job=J1` and billed a hash job, tick after tick.
    Failed before the fix: J2's tags replaced by J1's `pending`."""
    refuse_sync_hash(emulator)
    j1 = job_xml({"out/big.wav": md5(b"J1's bytes")}, [], job_id=JOB, times=ended(10))
    emulator.register_job(BUCKET, xmltodict.parse(j1)["Response"]["JobsDetail"])
    put_output(emulator)  # J2's bytes, written now
    app = server_app(make_app)
    assert invoke(app, http_event(job_xml({"out/big.wav": md5(DATA)}, [], job_id=LATER)))[0] == 200
    emulator.wait_for_file_jobs()
    assert deliver(app, posted.pop())[1]["jobs"][0]["outcome"] == "verified"
    theirs, jobs = emulator.tags(BUCKET, "out/big.wav"), emulator.file_jobs_created
    assert (theirs[VERIFY_TAG], theirs[JOB_TAG]) == ("verified", LATER)
    emulator.clear_requests()
    for _ in range(2):
        tick = app.handle(TIMER, CONTEXT)["sweep"]
        assert (tick["checked"], tick["outcomes"]) == (1, ["skipped"])  # J1's output: superseded
    assert emulator.tags(BUCKET, "out/big.wav") == theirs and emulator.file_jobs_created == jobs
    assert [r for r in emulator.requests if r.is_write and r.key == "out/big.wav"] == []


def test_a_replayed_callback_of_an_earlier_job_leaves_a_later_jobs_object_alone(emulator, make_app, posted):
    """The same through a replay of J1's own callback, and for an ETag that would decide at once."""
    j1 = job_xml({"out/big.wav": md5(b"later bytes")}, [], job_id=JOB, times=ended(10))
    emulator.put_object(BUCKET, "out/big.wav", b"later bytes")  # plain PUT: ETag = the MD5 J1 reported
    emulator.set_tags(BUCKET, "out/big.wav", {"owner": "J2"})
    app = server_app(make_app)
    status, result, _ = invoke(app, http_event(j1))
    assert (status, result["jobs"][0]["objects"][0]["verdict"]) == (200, "superseded")
    assert emulator.tags(BUCKET, "out/big.wav") == {"owner": "J2"} and emulator.file_jobs_created == 0


# --- 6. `pending` never outlives the hash it announces ---------------------------------------------------

def test_a_verified_object_moved_without_tags_keeps_no_pending_tag(emulator, make_app, posted):
    """Issue 19, defect 6: with ACTION_VERIFIED=move and ACTION_FAILED=tag, the `pending` written while the hash
    job ran travelled with the move and stayed, and the report command listed it. Failed before the fix:
    `ci-verify=pending` on verified/out/big.wav."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    emulator.set_tags(BUCKET, "out/big.wav", {"team": "audio"})
    body = job_xml({"out/big.wav": md5(DATA)}, [])
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    app = server_app(make_app, ACTION_VERIFIED="move", ACTION_FAILED="tag")
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    assert emulator.tags(BUCKET, "out/big.wav")[VERIFY_TAG] == "pending"
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    assert status == 200 and result["jobs"][0]["objects"][0]["actions"] == ["moved:verified/out/big.wav"]
    tags = emulator.tags(BUCKET, "verified/out/big.wav")
    assert VERIFY_TAG not in tags and tags["team"] == "audio"
    assert (tags[JOB_TAG], tags[HASH_JOB_TAG][:1]) == (JOB, "f")  # whose output, which hash: no verdict claimed
    tick = app.handle(TIMER, CONTEXT)["sweep"]  # whether it looks at the job again or not, nothing changes
    assert tick["errors"] == [] and emulator.tags(BUCKET, "verified/out/big.wav") == tags
    assert report_exit_code(emulator) == 0
    status, result, _ = invoke(app, http_event(body))  # a replay still finds the move
    assert result["jobs"][0]["objects"][0]["actions"] == ["moved:verified/out/big.wav"]


@pytest.mark.parametrize("verified", ["move", "tag,move"])
def test_pending_comes_off_the_source_once_hashed_even_when_its_move_is_blocked(emulator, make_app, posted,
                                                                                verified):
    """Red team D5: the hash is done (verified), but the move is refused because the destination holds other
    bytes (never overwritten: no retry finishes it). Failed before the fix: the source kept `ci-verify=pending`
    for good. Now `pending` comes off: replaced by the verdict when `tag` is in the action, else taken off
    (`ci-job` and `ci-hash-job` stay)."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    emulator.put_object(BUCKET, "verified/out/big.wav", b"someone else's bytes")
    body = job_xml({"out/big.wav": md5(DATA)}, [])
    app = server_app(make_app, ACTION_VERIFIED=verified, ACTION_FAILED="tag")
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    assert emulator.tags(BUCKET, "out/big.wav")[VERIFY_TAG] == "pending"
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    obj = result["jobs"][0]["objects"][0]
    assert (status, obj["verdict"]) == (503, "verified") and "already exists with other bytes" in obj["reason"]
    tags = emulator.tags(BUCKET, "out/big.wav")
    assert tags.get(VERIFY_TAG) == ("verified" if "tag" in verified else None), tags
    assert (tags[JOB_TAG], tags[HASH_JOB_TAG][:1]) == (JOB, "f")
    assert emulator.object_bytes(BUCKET, "verified/out/big.wav") == b"someone else's bytes"
    assert emulator.object_bytes(BUCKET, "out/big.wav") == DATA


def test_a_verified_object_left_untagged_by_its_action_keeps_no_pending_tag(emulator, make_app, posted):
    """The same invariant where the verified object stays in place untagged (ACTION_VERIFIED=none)."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    app = server_app(make_app, ACTION_VERIFIED="none", ACTION_FAILED="tag")
    invoke(app, http_event(job_xml({"out/big.wav": md5(DATA)}, [])))
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    assert (status, result["jobs"][0]["objects"][0]["verdict"]) == (200, "verified")
    assert VERIFY_TAG not in emulator.tags(BUCKET, "out/big.wav")
    assert report_exit_code(emulator) == 0


# --- reading the function's own records ------------------------------------------------------------

@pytest.mark.slow
def test_a_report_read_that_breaks_off_is_a_retry_not_a_crash(emulator, make_app, posted):
    """The job's audit report is read before a hash result is merged into it: a read that breaks off mid-body
    (a reset connection, or the exchange cut at its deadline) is a transient failure, answered 503 with the
    tags untouched, never an exception out of the handler. Failed before the fix: urllib3's ProtocolError
    escaped ObjectStore.get_bytes."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    body = job_xml({"out/big.wav": md5(b"what CI wrote")}, [])
    app = server_app(make_app, REPORT_PREFIX="reports/")
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    report = f"reports/{JOB}.json"
    assert emulator.object_bytes(BUCKET, report)
    emulator.add_fault(method="GET", key=report, truncate=10, times=None)
    status, result, _ = deliver(app, posted.pop())
    assert status == 503
    assert "audit report" in json.dumps(result)
    assert json.loads(emulator.object_bytes(BUCKET, report))["objects"][0]["verdict"] in ("pending", "mismatch")
