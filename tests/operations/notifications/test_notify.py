"""notify.py, the step end to end: what NOTIFY_ON names is sent, a notification never changes a verdict
or the status code, and what CI has not confirmed is never announced."""
from __future__ import annotations

import json

from tests.conftest import http_event, invoke, md5
from tests.operations.notifications.conftest import JOB, job_lines, messages, mismatch_body, notify_env, register
from tests.samples import BUCKET, REGION, job_xml


def test_a_refused_notification_changes_no_verdict_and_no_status(emulator, receiver, make_app, log_lines):
    receiver.answer(400)
    app = make_app(**notify_env(receiver))
    status, answer, _ = invoke(app, http_event(mismatch_body(emulator)))
    assert status == 200 and [o["verdict"] for o in answer["jobs"][0]["objects"]] == ["verified", "mismatch"]
    assert len(receiver.requests) == 1  # a 4xx is not retried
    assert emulator.tags(BUCKET, "out/bad.mp3")["ci-verify"] == "mismatch"
    (job,) = job_lines(log_lines)
    assert job["notificationsFailed"] == 1 and job["outcome"] == "failed"


def test_a_verified_job_sends_nothing_by_default(emulator, receiver, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", b"a")
    invoke(make_app(**notify_env(receiver)), http_event(job_xml(md5s={"out/a.mp3": md5(b"a")}, names=[])))
    assert receiver.requests == []


def test_notify_on_chooses_what_triggers_a_message(emulator, receiver, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", b"a")
    app = make_app(**notify_env(receiver), NOTIFY_ON="verified")
    invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(b"a")}, names=[])))
    (message,) = receiver.requests
    assert message.json()["data"]["objects"][0]["verdict"] == "verified"


# --- what CI has not confirmed is never announced ----------------------------------------------

def test_a_forged_failed_job_sends_nothing_writes_nothing_and_blocks_nothing(emulator, receiver, make_app):
    """Red-team finding: a failed job was not read back from CI unless REPORT_PREFIX was set, so
    a forged `State=Failed` sent its own Message and wrote the marker that then kept the genuine
    failure's message from being sent."""
    app = make_app(VERIFY_WITH_CI="true", **notify_env(receiver))
    register(emulator, job_xml(md5s=None, names=[], state="Running", code="", message=""))
    forged = job_xml(md5s=None, names=[], state="Failed", code="Forged", message="[re-run](https://evil.example/)")
    status, _, _ = invoke(app, http_event(forged))
    assert status == 403 and receiver.requests == []
    assert [r for r in emulator.requests if r.is_write] == []
    genuine = job_xml(md5s=None, names=[], state="Failed", code="InvalidInput", message="no audio stream")
    register(emulator, genuine)
    assert invoke(app, http_event(genuine))[0] == 200
    assert [m.get("message") for m in messages(receiver)] == ["no audio stream"]


def workflow_finish(job_id: str) -> bytes:
    return (f"<Response><EventName>WorkflowFinish</EventName><WorkflowExecution><WorkflowId>w1</WorkflowId>"
            f"<RunId>i1</RunId><State>Success</State><BucketId>{BUCKET}</BucketId><Object>in.mp4</Object>"
            f"<CreateTime>2026-11-23 10:00:00+0800</CreateTime><Tasks><Type>VoiceSeparate</Type>"
            f"<State>Success</State><JobId>{job_id}</JobId><Name>v_1</Name></Tasks>"
            f"</WorkflowExecution></Response>").encode()


def test_a_job_ci_reports_as_still_running_is_not_a_failed_job(emulator, receiver, make_app):
    """CI's own account of an unfinished job (Submitted, Running, Pause) is no failure: it is
    acknowledged as skipped (the sweep checks it once it has succeeded), and nothing is announced
    or remembered that would keep the real outcome's message from being sent (red-team finding)."""
    app = make_app(VERIFY_WITH_CI="true", REPORT_PREFIX="reports/", DEFAULT_REGION=REGION, **notify_env(receiver))
    register(emulator, job_xml(md5s=None, names=[], state="Running", code="", message="", job_id=JOB))
    status, answer, headers = invoke(app, http_event(workflow_finish(JOB)))
    (job,) = answer["jobs"]
    assert status == 200 and "Retry-After" not in headers
    assert job["outcome"] == "skipped" and "Running" in job["reason"]
    assert receiver.requests == [] and emulator.keys(BUCKET, ".ci-callback-verifier/") == []
    register(emulator, job_xml(md5s=None, names=[], state="Failed", code="InvalidInput", message="no audio stream",
                               job_id=JOB))
    assert invoke(app, http_event(workflow_finish(JOB)))[0] == 200
    assert [m.get("message") for m in messages(receiver)] == ["no audio stream"]
    assert json.loads(emulator.object_bytes(BUCKET, f"reports/{JOB}.json"))["outcome"] == "failed-job"


def test_a_forged_failed_job_that_names_no_bucket_is_not_announced(emulator, receiver, make_app, log_lines):
    """No Input, no outputs: nowhere to ask CI about it, so nothing vouches for its Message
    (red-team finding: it was sent, unconfirmed). It is acknowledged, and nothing is sent."""
    app = make_app(VERIFY_WITH_CI="true", **notify_env(receiver))
    forged = (f"<Response><EventName>TaskFinish</EventName><JobsDetail><Code>Forged</Code>"
              f"<Message>[re-run](https://evil.example/)</Message><JobId>{JOB}</JobId><State>Failed</State>"
              f"<Tag>Tts</Tag></JobsDetail></Response>").encode()
    status, _, _ = invoke(app, http_event(forged))
    assert status == 200 and receiver.requests == []
    assert [r for r in emulator.requests if r.is_write] == []
    assert any(json.loads(line)["message"] == "notification not sent" for line in log_lines)


def test_a_genuine_callback_without_state_is_confirmed_by_cis_success(emulator, receiver, make_app):
    """WordsGeneralize's callback has no State (its Code says Success); CI's job API says
    State=Success. With NOTIFY_URL set that was refused as a disagreement (red-team finding)."""
    body = job_xml(md5s=None, names=[], tag="WordsGeneralize", job_id=JOB).replace(b"<State>Success</State>", b"")
    register(emulator, job_xml(md5s=None, names=[], tag="WordsGeneralize", job_id=JOB))
    app = make_app(VERIFY_WITH_CI="true", **notify_env(receiver))
    status, answer, _ = invoke(app, http_event(body))
    assert status == 200 and answer["jobs"][0]["outcome"] == "skipped"
