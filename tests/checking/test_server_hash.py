"""VERIFY_MODE=server end to end through the emulator and the real SDK: CI hashes the outputs whose ETag
does not decide (filehash under 128 MB, a FileHashCode job above), no byte of them passes through the
function, the job's callback finishes the object, the sweep makes good a lost callback, and a forged
FileHashCode callback is refused."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import xmltodict

from handlers.checking.pending import HASH_JOB_TAG
from handlers.checking.ticket import Ticket, decode, encode
from handlers.config import ConfigError
from handlers.settings import Settings
from handlers.storage.records import STATE_PREFIX
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.cos.file_jobs import SYNC_LIMIT, FileJobCallback
from tests.conftest import function_env, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

JOB = "j0000000000000000000000000000001"
SMALL = b"voice track " * 200_000  # 2.4 MB, uploaded in parts: its ETag is not its MD5
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}
CONTEXT = {"request_id": "test-request", "time_limit_in_ms": 30000}


@pytest.fixture
def server_app(make_app):
    return make_app(VERIFY_MODE="server", HASH_CALLBACK_URL="https://fn.example/cb?token=test-token",
                    DEFAULT_REGION=REGION)


@pytest.fixture
def posted(emulator) -> list[FileJobCallback]:
    """The FileHashCode callbacks CI would post, held for the test to deliver (or lose)."""
    held: list[FileJobCallback] = []
    emulator.callback_sink = held.append
    return held


def big_object(emulator, key: str = "out/big.wav", seed: str = "", last_modified: float | None = None) -> str:
    """An object of exactly 128 MiB (too large for the synchronous hash), multipart; its MD5."""
    chunk = hashlib.sha256((seed or key).encode()).digest() * (1 << 15)  # 1 MiB
    emulator.put_object(BUCKET, key, (chunk for _ in range(SYNC_LIMIT >> 20)), part_size=8 << 20,
                        last_modified=last_modified)
    digest = hashlib.md5()
    for _ in range(SYNC_LIMIT >> 20):
        digest.update(chunk)
    return digest.hexdigest()


def object_reads(emulator) -> list:
    """GET Object requests: what would carry an object's bytes through the function (its own records aside:
    the FileHashCode jobs started per version, handlers/checking/hashledger.py)."""
    return [r for r in emulator.requests if r.service == "cos" and r.method == "GET" and r.key
            and not r.key.startswith(STATE_PREFIX) and not {"tagging", "ci-process"} & set(r.query)]


def deliver(app, callback: FileJobCallback):
    return invoke(app, http_event(callback.body, callback.content_type))


# --- the synchronous hash: under 128 MB ------------------------------------------------------

def test_under_128_mb_ci_hashes_the_object_synchronously_and_the_verdict_is_immediate(emulator, server_app):
    emulator.put_object(BUCKET, "out/a.mp3", SMALL, part_size=1 << 20)
    emulator.put_object(BUCKET, "out/b.mp3", SMALL + b"!", part_size=1 << 20)
    body = job_xml(md5s={"out/a.mp3": md5(SMALL), "out/b.mp3": md5(SMALL)}, names=["out/a.mp3", "out/b.mp3"])
    status, result, _ = invoke(server_app, http_event(body))
    assert status == 200 and result["jobs"][0]["outcome"] == "failed"
    a, b = result["jobs"][0]["objects"]
    assert (a["verdict"], a["method"], b["verdict"]) == ("verified", "content", "mismatch")
    assert "hashed by CI (filehash)" in a["reason"]
    assert emulator.tags(BUCKET, "out/a.mp3") == {VERIFY_TAG: "verified", JOB_TAG: JOB}
    assert emulator.tags(BUCKET, "out/b.mp3")[VERIFY_TAG] == "mismatch"
    assert object_reads(emulator) == []  # not one byte through the function
    hashes = [r for r in emulator.requests if r.query.get("ci-process") == "filehash"]
    assert len(hashes) == 2 and all(r.query["addtoheader"] == "false" and r.query["type"] == "md5" for r in hashes)
    assert emulator.file_jobs_created == 0


def test_an_etag_that_decides_needs_no_hash_at_all(emulator, server_app):
    emulator.put_object(BUCKET, "out/a.mp3", SMALL)  # a plain PUT: ETag = MD5
    status, result, _ = invoke(server_app, http_event(job_xml({"out/a.mp3": md5(SMALL)}, ["out/a.mp3"])))
    assert status == 200 and result["jobs"][0]["objects"][0]["method"] == "etag"
    assert not [r for r in emulator.requests if r.query.get("ci-process")] and emulator.file_jobs_created == 0


# --- the FileHashCode job: from 128 MB -------------------------------------------------------

@pytest.mark.slow
def test_a_large_output_is_pending_until_its_file_job_callback_finishes_it(emulator, server_app, posted):
    expected = big_object(emulator)
    body = job_xml({"out/big.wav": expected}, ["out/big.wav"])
    status, result, _ = invoke(server_app, http_event(body))
    assert status == 200 and result["jobs"][0]["outcome"] == "pending"
    [pending] = result["jobs"][0]["objects"]
    assert (pending["verdict"], pending["actions"]) == ("pending", ["tagged"])
    tags = emulator.tags(BUCKET, "out/big.wav")
    assert tags[VERIFY_TAG] == "pending" and tags[JOB_TAG] == JOB and tags[HASH_JOB_TAG].startswith("f")
    emulator.wait_for_file_jobs()
    [callback] = posted
    assert callback.url == "https://fn.example/cb?token=test-token"
    ticket = decode(xmltodict.parse(callback.body)["Response"]["JobsDetail"]["Operation"]["UserData"])
    assert ticket is not None and (ticket.job_id, ticket.key, ticket.expected_md5) == (JOB, "out/big.wav", expected)
    assert ticket.etag == emulator.object_info(BUCKET, "out/big.wav")["etag"]

    status, result, _ = deliver(server_app, callback)
    assert status == 200
    [job] = result["jobs"]
    assert (job["jobId"], job["tag"], job["outcome"]) == (JOB, "VoiceSeparate", "verified")
    assert job["objects"][0]["verdict"] == "verified" and tags[HASH_JOB_TAG] in job["objects"][0]["reason"]
    assert emulator.tags(BUCKET, "out/big.wav") == {VERIFY_TAG: "verified", JOB_TAG: JOB, HASH_JOB_TAG: tags[HASH_JOB_TAG]}
    confirmations = [r for r in emulator.requests if r.service == "ci" and r.method == "GET"]
    assert [r.key for r in confirmations] == [f"file_jobs/{tags[HASH_JOB_TAG]}"]  # confirmed with CI first
    assert object_reads(emulator) == []
    # A replay of the original callback starts no second job: the tag names the finished one.
    status, result, _ = invoke(server_app, http_event(body))
    assert status == 200 and result["jobs"][0]["outcome"] == "verified" and emulator.file_jobs_created == 1


@pytest.mark.slow
def test_a_json_file_job_callback_finishes_the_verdict_as_the_xml_one_does(emulator, server_app, posted):
    """A queue whose callbacks are JSON sends the FileHashCode TaskFinish as JSON too (the job
    names no CallBackFormat, so the queue's applies)."""
    emulator.file_queue_callback_format = "JSON"
    expected = big_object(emulator)
    status, result, _ = invoke(server_app, http_event(job_xml({"out/big.wav": expected}, ["out/big.wav"])))
    assert status == 200 and result["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    [callback] = posted
    assert callback.content_type == "application/json"
    hash_job = json.loads(callback.body)["Response"]["JobsDetail"]
    assert hash_job["Tag"] == "FileHashCode" and hash_job["Operation"]["FileHashCodeResult"]["MD5"] == expected

    status, result, _ = deliver(server_app, callback)
    assert status == 200, result
    [job] = result["jobs"]
    assert (job["jobId"], job["outcome"], job["objects"][0]["verdict"]) == (JOB, "verified", "verified")
    assert emulator.tags(BUCKET, "out/big.wav")[VERIFY_TAG] == "verified"
    assert object_reads(emulator) == []


@pytest.mark.slow
def test_a_lost_file_job_callback_is_made_good_by_the_sweep(emulator, server_app, posted):
    expected = big_object(emulator)
    body = job_xml({"out/big.wav": expected}, ["out/big.wav"])
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    emulator.file_job_delay = 1.0  # still running at the first tick
    assert invoke(server_app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
    first = server_app.handle(TIMER, CONTEXT)["sweep"]
    assert first["outcomes"] == ["pending"] and emulator.file_jobs_created == 1  # no second job
    emulator.wait_for_file_jobs()
    posted.clear()  # the callback is lost
    second = server_app.handle(TIMER, CONTEXT)["sweep"]
    assert second["outcomes"] == ["verified"] and second["errors"] == []
    assert emulator.tags(BUCKET, "out/big.wav")[VERIFY_TAG] == "verified" and emulator.file_jobs_created == 1
    assert object_reads(emulator) == []
    third = server_app.handle(TIMER, CONTEXT)["sweep"]
    assert third["alreadyDone"] == 1 and third["checked"] == 0


@pytest.mark.slow
def test_an_object_rewritten_after_it_was_hashed_is_checked_afresh(emulator, server_app, posted):
    expected = big_object(emulator)
    invoke(server_app, http_event(job_xml({"out/big.wav": expected}, ["out/big.wav"])))
    emulator.wait_for_file_jobs()
    emulator.put_object(BUCKET, "out/big.wav", SMALL, part_size=1 << 20)  # other bytes, another ETag
    status, result, _ = deliver(server_app, posted[0])
    assert status == 200 and result["jobs"][0]["objects"][0]["verdict"] == "mismatch"  # hashed again, by filehash
    assert emulator.tags(BUCKET, "out/big.wav")[VERIFY_TAG] == "mismatch"


@pytest.mark.slow
def test_a_late_hash_callback_of_an_earlier_job_leaves_a_later_jobs_object_alone(emulator, server_app, posted):
    """Red-team finding: J1's FileHashCode callback, delivered again after J2 rewrote and verified the
    key, started a new (billed) hash job for J1 and replaced J2's tags with J1's `pending`. The hash
    settles only the version it hashed; a version written after J1 ended is J2's: superseded, untouched."""
    ended_long_ago = tuple((datetime.now(timezone(timedelta(hours=8))) - timedelta(minutes=10, seconds=s))
                           .strftime("%Y-%m-%dT%H:%M:%S%z") for s in (6, 5, 0))
    first = big_object(emulator, last_modified=time.time() - 11 * 60)  # J1 wrote it before it ended
    invoke(server_app, http_event(job_xml({"out/big.wav": first}, [], job_id=JOB, times=ended_long_ago)))
    emulator.wait_for_file_jobs()
    j1_hash = posted.pop()
    assert deliver(server_app, j1_hash)[1]["jobs"][0]["outcome"] == "verified"
    later = "j0000000000000000000000000000002"
    second = big_object(emulator, seed="J2's bytes")
    assert invoke(server_app, http_event(job_xml({"out/big.wav": second}, [], job_id=later)))[0] == 200
    emulator.wait_for_file_jobs()
    assert deliver(server_app, posted.pop())[1]["jobs"][0]["outcome"] == "verified"
    j2_tags, jobs_before = emulator.tags(BUCKET, "out/big.wav"), emulator.file_jobs_created
    assert j2_tags[VERIFY_TAG] == "verified" and j2_tags[JOB_TAG] == later
    emulator.clear_requests()
    status, result, _ = deliver(server_app, j1_hash)  # J1's hash callback once more
    (obj,) = result["jobs"][0]["objects"]
    assert status == 200 and obj["verdict"] == "superseded" and "after the job ended" in obj["reason"]
    assert emulator.tags(BUCKET, "out/big.wav") == j2_tags and emulator.file_jobs_created == jobs_before
    assert [r for r in emulator.requests if r.is_write] == []


@pytest.mark.slow
def test_a_file_job_callback_updates_its_object_in_the_jobs_report_and_keeps_the_others(emulator, make_app,
                                                                                       posted):
    """Red-team finding: the FileHashCode callback rewrote the media job's audit report with the one
    object it hashed, so the job's other mismatching output vanished from it and the report command
    exited 0. Now the report keeps every output, and the outcome is the whole job's."""
    import io

    from handlers.operations.report_command.command import main as report_command
    from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN

    def report_exit_code() -> int:
        env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
               "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint}
        return report_command(["--bucket", BUCKET, "--region", REGION, "--reports-prefix", "reports/"], env,
                              io.StringIO(), io.StringIO())

    expected = big_object(emulator)
    emulator.put_object(BUCKET, "out/small.mp3", b"corrupt")  # CI reported other bytes: a mismatch
    app = make_app(VERIFY_MODE="server", REPORT_PREFIX="reports/",
                   HASH_CALLBACK_URL="https://fn.example/cb?token=test-token", DEFAULT_REGION=REGION)
    body = job_xml({"out/big.wav": expected, "out/small.mp3": md5(b"what CI wrote")}, [])
    assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "failed"
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    assert status == 200 and result["jobs"][0]["objects"][0]["verdict"] == "verified"
    report = json.loads(emulator.object_bytes(BUCKET, f"reports/{JOB}.json"))
    verdicts = {o["key"]: o["verdict"] for o in report["objects"]}
    assert verdicts == {"out/big.wav": "verified", "out/small.mp3": "mismatch"} and report["outcome"] == "failed"
    assert report_exit_code() == 1


@pytest.mark.slow
def test_each_file_job_callback_that_finds_a_new_problem_sends_its_message(emulator, make_app, posted):
    """Red-team finding: with two large outputs both bad, the message for the first hash callback (job
    and outcome `failed`) kept the second's from being sent, though it named only the first object."""
    from localcloud.webhook import WebhookReceiver
    big_object(emulator, "out/a.wav")
    big_object(emulator, "out/b.wav")
    body = job_xml({"out/a.wav": "1" * 32, "out/b.wav": "2" * 32}, [])
    with WebhookReceiver() as hook:
        app = make_app(VERIFY_MODE="server", NOTIFY_URL=hook.url(), NOTIFY_FORMAT="wecom",
                       HASH_CALLBACK_URL="https://fn.example/cb?token=test-token", DEFAULT_REGION=REGION)
        assert invoke(app, http_event(body))[1]["jobs"][0]["outcome"] == "pending"
        emulator.wait_for_file_jobs()
        assert len(posted) == 2
        for callback in (*posted, *posted):  # and each delivered twice: no second message for either
            assert deliver(app, callback)[0] == 200
        texts = [json.loads(r.body)["markdown"]["content"] for r in hook.requests]
    assert len(texts) == 2 and sorted("out/a.wav" in t for t in texts) == [False, True]
    assert any("out/b.wav" in t for t in texts)


# --- forged callbacks ----------------------------------------------------------------------------

def forged(job_id: str, user_data: str, md5_value: str = "0" * 32) -> bytes:
    return f"""<Response><EventName>TaskFinish</EventName><JobsDetail><Code>Success</Code><Message/>
<JobId>{job_id}</JobId><State>Success</State><Tag>FileHashCode</Tag>
<Input><BucketId>{BUCKET}</BucketId><Object>out/big.wav</Object><Region>{REGION}</Region></Input>
<Operation><FileHashCodeConfig><Type>MD5</Type></FileHashCodeConfig><FileHashCodeResult><MD5>{md5_value}</MD5>
</FileHashCodeResult><UserData>{user_data}</UserData></Operation></JobsDetail></Response>""".encode()


def test_a_forged_file_hash_callback_is_refused_without_a_write(emulator, server_app):
    emulator.put_object(BUCKET, "out/big.wav", SMALL, part_size=1 << 20)
    user_data = encode(Ticket(JOB, "VoiceSeparate", BUCKET, "out/big.wav",
                              emulator.object_info(BUCKET, "out/big.wav")["etag"], md5(SMALL), None))
    assert user_data is not None
    status, result, _ = invoke(server_app, http_event(forged("f" + "0" * 32, user_data, md5(SMALL))))
    assert status == 403 and "unknown to CI" in result["error"]
    assert emulator.tags(BUCKET, "out/big.wav") == {}
    assert {r.method for r in emulator.requests if r.service == "cos"} <= {"GET", "HEAD"}
    assert [r.key for r in emulator.requests if r.service == "ci"] == ["file_jobs/f" + "0" * 32]


@pytest.mark.slow
def test_a_file_job_callback_is_believed_only_as_ci_reports_it(emulator, server_app, posted):
    expected = big_object(emulator)
    emulator.put_object(BUCKET, "out/other.wav", SMALL, part_size=1 << 20)
    invoke(server_app, http_event(job_xml({"out/big.wav": expected}, ["out/big.wav"])))
    emulator.wait_for_file_jobs()
    real = xmltodict.parse(posted[0].body)["Response"]["JobsDetail"]
    # The real job's id, but a claim about another object and MD5: CI's account decides.
    status, result, _ = invoke(server_app, http_event(forged(real["JobId"], real["Operation"]["UserData"],
                                                             md5(b"whatever"))))
    assert status == 200 and result["jobs"][0]["objects"][0]["key"] == "out/big.wav"
    assert result["jobs"][0]["objects"][0]["verdict"] == "verified"
    assert emulator.tags(BUCKET, "out/other.wav") == {}


# --- configuration ----------------------------------------------------------------------------------

def test_verify_mode_server_and_its_settings_are_read(emulator):
    settings = Settings.from_env(function_env(emulator, VERIFY_MODE="server", HASH_QUEUE_ID="pfile"))
    assert (settings.verify_mode, settings.hash_queue_id, settings.hash_callback_url) == ("server", "pfile", "")
    with pytest.raises(ConfigError) as error:
        Settings.from_env(function_env(emulator, HASH_CALLBACK_URL="ftp://x"))
    assert "HASH_CALLBACK_URL" in str(error.value)


def test_a_partial_report_replaces_its_objects_and_takes_the_whole_jobs_outcome():
    from handlers.operations.audit import merged_report

    def report(outcome: str, *objects: tuple[str, str]) -> bytes:
        return json.dumps({"jobId": JOB, "outcome": outcome, "objects": [
            {"bucket": BUCKET, "key": key, "verdict": verdict} for key, verdict in objects]}).encode()

    earlier = report("failed", ("out/big.wav", "pending"), ("out/small.mp3", "mismatch"))
    merged = json.loads(merged_report(earlier, report("verified", ("out/big.wav", "verified"))))
    assert merged["outcome"] == "failed"
    assert [(o["key"], o["verdict"]) for o in merged["objects"]] == [("out/big.wav", "verified"),
                                                                    ("out/small.mp3", "mismatch")]
    earlier = report("pending", ("out/a.wav", "pending"), ("out/b.wav", "verified"))
    assert json.loads(merged_report(earlier, report("verified", ("out/a.wav", "verified"))))["outcome"] == "verified"
    # A late or replayed callback finds the version it hashed gone (superseded): what the job's report
    # already decided about the object stands (red-team finding: it turned a failed job verified).
    earlier = report("failed", ("out/big.wav", "mismatch"), ("out/small.mp3", "verified"))
    merged = json.loads(merged_report(earlier, report("skipped", ("out/big.wav", "superseded"))))
    assert merged["outcome"] == "failed" and merged["objects"][0]["verdict"] == "mismatch"
    earlier = report("pending", ("out/big.wav", "pending"))
    assert json.loads(merged_report(earlier, report("skipped", ("out/big.wav", "superseded"))))["objects"][0][
        "verdict"] == "superseded"
    # No report yet, or another job's: the partial one is written as it is.
    fresh = report("verified", ("out/a.wav", "verified"))
    assert merged_report(None, fresh) == fresh and merged_report(b"not json", fresh) == fresh
