"""Notifications: each format's body and signature as the receiver checks it, one message per job and
outcome across replays and containers, delivery within the deadline, and never a changed verdict."""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import time

import pytest
import xmltodict

from handlers.app import App
from handlers.config import ConfigError, Settings
from handlers.operations.notifications.notify import (
    MAX_OBJECTS_LISTED,
    MAX_ROBOT_TEXT,
    AffectedObject,
    Notice,
    _clip,
    build_request,
    markdown,
    md_inline,
    one_line,
)
from localcloud.webhook import WebhookReceiver, verify_standard_webhook
from tests.conftest import function_env, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
JOB = "j0000000000000000000000000000001"


@pytest.fixture
def posted(emulator):
    """The FileHashCode callbacks CI would post (VERIFY_MODE=server), held for the test to deliver."""
    held: list = []
    emulator.callback_sink = held.append
    return held


@pytest.fixture
def receiver():
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


def mismatch_body(emulator) -> bytes:
    emulator.put_object(BUCKET, "out/voice.mp3", b"voice")
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    return job_xml(md5s={"out/voice.mp3": md5(b"voice"), "out/bad.mp3": md5(b"expected")}, names=[])


def notify_env(receiver, **extra: str) -> dict[str, str]:
    return {"NOTIFY_URL": receiver.url(), "NOTIFY_SECRET": SECRET, **extra}


def job_lines(log_lines: list[str]) -> list[dict]:
    return [e for e in map(json.loads, log_lines) if e["message"] == "job processed"]


def test_a_mismatch_sends_one_signed_standard_webhook(emulator, receiver, make_app, log_lines):
    app = make_app(**notify_env(receiver), ACTION_FAILED="tag,move")
    status, answer, _ = invoke(app, http_event(mismatch_body(emulator)))
    assert status == 200 and answer["jobs"][0]["outcome"] == "failed"
    (message,) = receiver.requests
    assert message.signature == "valid"  # checked by the receiver, from the specification
    assert message.headers["webhook-id"].startswith("msg_") and message.headers["content-type"].startswith(
        "application/json")
    event = message.json()
    assert event["type"] == "ci.verification.failed" and event["timestamp"].endswith("Z")
    data = event["data"]
    assert data["jobId"] == JOB and data["tag"] == "VoiceSeparate" and data["bucket"] == BUCKET
    assert data["region"] == REGION and data["requestId"] == "test-request"
    assert data["counts"] == {"verified": 1, "mismatch": 1}
    (bad,) = data["objects"]  # the affected object only, not the verified one
    assert bad["key"] == "out/bad.mp3" and bad["verdict"] == "mismatch" and bad["reason"]
    assert bad["movedTo"] == "quarantine/out/bad.mp3"
    assert emulator.object_bytes(BUCKET, "quarantine/out/bad.mp3") == b"corrupt"
    (job,) = job_lines(log_lines)
    assert job["notification"] == "sent" and job["notificationsSent"] == 1 and job["notificationsFailed"] == 0


def test_a_tampered_body_fails_the_receivers_check(receiver):
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
               "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    assert verify_standard_webhook(SECRET, headers, b"{}") == "no v1 signature matches"


def test_replays_and_other_containers_send_no_second_message(emulator, receiver, make_app, log_lines):
    body = mismatch_body(emulator)
    first = make_app(**notify_env(receiver))
    for _ in range(3):
        assert invoke(first, http_event(body))[0] == 200
    other_container = make_app(**notify_env(receiver))  # nothing in memory: the marker in COS decides
    assert invoke(other_container, http_event(body))[0] == 200
    assert len(receiver.requests) == 1
    assert [j["notification"] for j in job_lines(log_lines)] == ["sent", "already-sent", "already-sent",
                                                                  "already-sent"]
    assert emulator.keys(BUCKET, ".ci-callback-verifier/notified/") == [f".ci-callback-verifier/notified/{JOB}.json"]
    (sent,) = json.loads(emulator.object_bytes(BUCKET, f".ci-callback-verifier/notified/{JOB}.json"))["messages"]
    assert sent["webhookId"] == receiver.requests[0].headers["webhook-id"]
    assert sent["problems"] == [{"key": "out/bad.mp3", "verdict": "mismatch"}] and sent["outcome"] == "failed"
    assert receiver.url() not in json.dumps(sent)  # the URL is a credential: only its hash is kept


def test_a_replay_after_a_hash_callback_announces_no_problem_twice(emulator, make_app, posted, receiver):
    """Red team D3 (README: 'Once per job, outcome and problem'; 'a message is sent when it names a problem not
    announced before'). Server mode: out/gone.wav is missing (announced by the media job's callback), out/big.wav
    mismatches (announced by its FileHashCode callback). CI then delivers the media job's callback again: both
    problems were announced. Failed before the fix: a third message {big mismatch, gone missing}, since the
    marker and the webhook-id hashed the whole set of objects a message named."""
    from tests.checking.test_server_mode_invariants import deliver, put_output, refuse_sync_hash, server_app
    refuse_sync_hash(emulator)
    put_output(emulator)
    body = job_xml({"out/big.wav": md5(b"what CI wrote"), "out/gone.wav": md5(b"never written")}, [])
    app = server_app(make_app, **notify_env(receiver), REPORT_PREFIX="reports/")
    status, result, _ = invoke(app, http_event(body))
    assert {o["key"]: o["verdict"] for o in result["jobs"][0]["objects"]} == {"out/big.wav": "pending",
                                                                             "out/gone.wav": "missing"}
    emulator.wait_for_file_jobs()
    status, result, _ = deliver(app, posted.pop())
    assert result["jobs"][0]["objects"][0]["verdict"] == "mismatch"
    status, result, _ = invoke(app, http_event(body))  # CI's duplicate delivery of the media callback
    assert {o["key"]: o["verdict"] for o in result["jobs"][0]["objects"]} == {"out/big.wav": "mismatch",
                                                                             "out/gone.wav": "missing"}
    sent = [[(o["key"], o["verdict"]) for o in r.json()["data"]["objects"]] for r in receiver.requests]
    assert sent == [[("out/gone.wav", "missing")], [("out/big.wav", "mismatch")]], sent
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2


def test_a_message_names_only_the_problems_not_announced_before_and_costs_one_read(emulator, receiver, make_app,
                                                                                   log_lines):
    """Inline: 30 outputs missing are announced in one message; then one more output turns out corrupt (a
    rewrite): the replay's message names that output only, and a further replay sends nothing. Whether a
    problem was announced costs one read of the job's record per invocation, however many objects or URLs."""
    missing = {f"out/gone{i:02}.mp3": md5(b"never written") for i in range(30)}
    emulator.put_object(BUCKET, "out/ok.mp3", b"ok")
    body = job_xml({**missing, "out/ok.mp3": md5(b"ok")}, [])
    with WebhookReceiver(secret=SECRET) as second:
        app = make_app(NOTIFY_URL=f"{receiver.url()},{second.url()}", NOTIFY_SECRET=SECRET)
        assert invoke(app, http_event(body))[0] == 200
        emulator.put_object(BUCKET, "out/ok.mp3", b"rewritten")  # now a mismatch
        emulator.clear_requests()
        assert invoke(app, http_event(body))[0] == 200
        records = [r for r in emulator.requests if "/notified/" in (r.key or "")]
        assert [r.method for r in records] == ["GET", "GET", "PUT", "GET"]  # check; then read, write, read back
        emulator.clear_requests()
        assert invoke(app, http_event(body))[0] == 200
        assert [r.method for r in emulator.requests if "/notified/" in (r.key or "")] == ["GET"]
        for hook in (receiver, second):
            first, then = (m.json()["data"]["objects"] for m in hook.requests)
            assert sorted(o["key"] for o in first) == sorted(missing)
            assert [(o["key"], o["verdict"]) for o in then] == [("out/ok.mp3", "mismatch")]
    assert [j["notification"] for j in job_lines(log_lines)] == ["sent", "sent", "already-sent"]
    (record,) = emulator.keys(BUCKET, ".ci-callback-verifier/notified/")
    assert record == f".ci-callback-verifier/notified/{JOB}.json"
    messages = json.loads(emulator.object_bytes(BUCKET, record))["messages"]
    assert len(messages) == 4 and {m["webhookId"] for m in messages} == {
        r.headers["webhook-id"] for r in receiver.requests}


def test_what_a_message_announces_is_what_was_not_announced_before():
    """The pure part of red team D3: problems are (key, verdict) and, when NOTIFY_ON names it, the outcome;
    a message about the rest keeps the id that a message naming just those problems has."""
    from handlers.operations.notifications.notify import message_id, narrowed, problems
    gone, big = AffectedObject("out/gone.wav", "missing", "r", ""), AffectedObject("out/big.wav", "mismatch", "r", "")
    moved = AffectedObject("out/x.wav", "verified", "the move failed", "", "error")
    notice = Notice(JOB, "VoiceSeparate", "Success", "failed", BUCKET, REGION, "", "", (gone, big, moved), {}, "r1",
                    outcome_named=True)
    assert problems(notice) == {("out/gone.wav", "missing"), ("out/big.wav", "mismatch"), ("out/x.wav", "error"),
                                ("", "failed")}
    rest = narrowed(notice, frozenset({("out/gone.wav", "missing"), ("", "failed")}))
    assert rest is not None and rest.objects == (big, moved) and not rest.outcome_named
    assert message_id(rest) == message_id(dataclasses.replace(notice, objects=(moved, big), outcome_named=False,
                                                              request_id="r2"))
    assert narrowed(notice, problems(notice)) is None
    # The same object with another verdict is another problem.
    assert narrowed(notice, frozenset({("out/gone.wav", "mismatch")} | problems(notice) - {("out/gone.wav",
                                                                                             "missing")})) is not None


def test_a_record_that_cannot_be_written_is_logged_and_a_replay_announces_again(emulator, receiver, make_app,
                                                                                  log_lines):
    emulator.add_fault(method="PUT", key=f".ci-callback-verifier/notified/{JOB}.json", status=403,
                       code="AccessDenied", times=None)
    body = mismatch_body(emulator)
    app = make_app(**notify_env(receiver))
    assert invoke(app, http_event(body))[0] == 200
    errors = [e for e in map(json.loads, log_lines) if e["message"].startswith("notification sent but not recorded")]
    assert errors and errors[0]["level"] == "ERROR"
    assert invoke(app, http_event(body))[0] == 200
    assert len(receiver.requests) == 2 and len({r.headers["webhook-id"] for r in receiver.requests}) == 1


def test_markers_go_under_report_prefix_when_set(emulator, receiver, make_app):
    app = make_app(**notify_env(receiver), REPORT_PREFIX="reports/")
    invoke(app, http_event(mismatch_body(emulator)))
    assert [k for k in emulator.keys(BUCKET, "reports/") if "/notified/" in k]


def test_a_5xx_is_retried_with_the_same_webhook_id(emulator, receiver, make_app, log_lines):
    receiver.answer(503, 502)
    app = make_app(**notify_env(receiver))
    assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
    assert len(receiver.requests) == 3 and len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert all(r.signature == "valid" for r in receiver.requests)
    assert job_lines(log_lines)[0]["notification"] == "sent"


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", [
    {"hang": True},
    # requests' timeout bounds each socket read, not the exchange: an answer that comes a byte at a
    # time (a slow proxy) never trips it (red-team finding: 39 s in a 4 s invocation).
    {"body": b'{"errcode":0,"errmsg":"ok"}', "trickle": 0.5},  # 27 bytes: 13 s
], ids=["never-answers", "trickles-its-answer"])
def test_a_receiver_that_holds_its_answer_costs_no_more_than_the_deadline(emulator, receiver, make_app, log_lines,
                                                                          behaviour):
    receiver.answer(**behaviour)
    app = make_app(**notify_env(receiver))
    body = mismatch_body(emulator)
    started = time.monotonic()
    status, answer, _ = app_invoke(app, body, time_limit_ms=4000)
    assert time.monotonic() - started < 4.0  # SCF would have cut the invocation there
    assert status == 200 and answer["jobs"][0]["objects"][1]["verdict"] == "mismatch"
    failures = [e for e in map(json.loads, log_lines) if e["message"] == "notification failed"]
    assert failures and failures[0]["level"] == "ERROR"
    (job,) = job_lines(log_lines)
    assert job["notification"] == "failed" and job["notificationsFailed"] == 1
    assert emulator.keys(BUCKET, ".ci-callback-verifier/") == []  # not remembered: a replay tries again
    receiver.answer()
    assert invoke(app, http_event(body))[0] == 200
    assert job_lines(log_lines)[-1]["notification"] == "sent"


def test_a_refusal_sent_gzip_encoded_is_still_a_refusal(emulator, make_app, log_lines):
    """requests offers gzip; the answer is read as it came, so it must be decoded before it is
    judged (red-team finding: a compressed errcode read as no refusal, the message marked sent)."""
    with WebhookReceiver(kind="wecom") as robot:
        robot.answer(body=b'{"errcode":93000,"errmsg":"invalid webhook url"}', gzip=True)
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=k"), NOTIFY_FORMAT="wecom")
        status, _, _ = app_invoke(app, mismatch_body(emulator), time_limit_ms=10000)
    assert status == 200
    failures = [e for e in map(json.loads, log_lines) if e["message"] == "notification failed"]
    assert failures and "93000" in failures[0]["reason"]
    assert emulator.keys(BUCKET, ".ci-callback-verifier/") == []


def app_invoke(app: App, body: bytes, time_limit_ms: int) -> tuple[int, dict, dict]:
    return invoke(app, http_event(body), {"request_id": "test-request", "time_limit_in_ms": time_limit_ms})


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


def test_a_failed_job_says_what_ci_said(receiver, make_app):
    body = job_xml(md5s=None, names=[], state="Failed", code="InternalError", message="voice model crashed")
    invoke(make_app(**notify_env(receiver)), http_event(body))
    (message,) = receiver.requests
    data = message.json()["data"]
    assert message.json()["type"] == "ci.verification.failed-job"
    assert data["code"] == "InternalError" and data["message"] == "voice model crashed" and data["objects"] == []


def test_notify_on_chooses_what_triggers_a_message(emulator, receiver, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", b"a")
    app = make_app(**notify_env(receiver), NOTIFY_ON="verified")
    invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(b"a")}, names=[])))
    (message,) = receiver.requests
    assert message.json()["data"]["objects"][0]["verdict"] == "verified"


# --- the robots ------------------------------------------------------------------------------

def test_wecom_gets_a_markdown_message(emulator, make_app):
    with WebhookReceiver(kind="wecom") as robot:
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=wecom-robot-key-123"), NOTIFY_FORMAT="wecom",
                       ACTION_FAILED="move")
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
        (message,) = robot.requests
    body = message.json()
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert JOB in content and "VoiceSeparate" in content and BUCKET in content
    assert "- **mismatch**: out/bad.mp3 (" in content and "moved to quarantine/out/bad.mp3" in content
    assert "out/voice.mp3" not in content and "Request id: test-request" in content
    assert message.query == {"key": "wecom-robot-key-123"} and len(content.encode()) <= 4096


def test_dingtalk_gets_markdown_and_a_valid_sign(emulator, make_app, log_lines):
    secret = "SECdingtalk-signing-secret-0123456789"
    with WebhookReceiver(secret=secret, kind="dingtalk") as robot:
        app = make_app(NOTIFY_URL=robot.url("/robot/send?access_token=dingtalk-token-123"), NOTIFY_FORMAT="dingtalk",
                       NOTIFY_SECRET=secret)
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
        (message,) = robot.requests
    assert message.signature == "valid"
    assert message.query["access_token"] == "dingtalk-token-123" and set(message.query) == {
        "access_token", "timestamp", "sign"}
    body = message.json()
    assert body["msgtype"] == "markdown" and JOB in body["markdown"]["title"]
    assert "**mismatch**" in body["markdown"]["text"]
    assert not [line for line in log_lines if secret in line or "dingtalk-token-123" in line]


def test_feishu_gets_a_post_with_its_signature_in_the_body(emulator, make_app):
    secret = "feishu-signing-secret-0123"
    with WebhookReceiver(secret=secret, kind="feishu") as robot:
        robot.answer(body=b'{"code":0,"msg":"success","data":{}}')
        app = make_app(NOTIFY_URL=robot.url("/open-apis/bot/v2/hook/feishu-hook-id"), NOTIFY_FORMAT="feishu",
                       NOTIFY_SECRET=secret)
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
        (message,) = robot.requests
    assert message.signature == "valid"
    body = message.json()
    assert body["msg_type"] == "post" and body["timestamp"].isdigit() and body["sign"]
    post = body["content"]["post"]["zh_cn"]
    text = "\n".join(part["text"] for row in post["content"] for part in row)
    assert JOB in post["title"] and "out/bad.mp3: mismatch" in text and "Request id: test-request" in text


def test_a_robot_that_refuses_with_an_error_code_is_a_failure(emulator, make_app, log_lines):
    with WebhookReceiver(kind="wecom") as robot:
        robot.answer(body=b'{"errcode":93000,"errmsg":"invalid webhook url"}')
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=k1234567"), NOTIFY_FORMAT="wecom")
        assert invoke(app, http_event(mismatch_body(emulator)))[0] == 200
    failure = next(e for e in map(json.loads, log_lines) if e["message"] == "notification failed")
    assert "93000" in failure["reason"] and job_lines(log_lines)[0]["notificationsFailed"] == 1


# --- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("env, variable", [
    ({"NOTIFY_URL": "ftp://example.com/x", "NOTIFY_SECRET": SECRET}, "NOTIFY_URL"),
    ({"NOTIFY_URL": "https://example.com/x"}, "NOTIFY_SECRET"),  # json is always signed
    ({"NOTIFY_URL": "https://example.com/x", "NOTIFY_SECRET": "plain-secret"}, "NOTIFY_SECRET"),
    ({"NOTIFY_URL": "https://example.com/x", "NOTIFY_SECRET": "whsec_" + base64.b64encode(b"short").decode()},
     "NOTIFY_SECRET"),
    ({"NOTIFY_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "NOTIFY_SECRET": "s"}, "NOTIFY_SECRET"),
    ({"NOTIFY_URL": "https://example.com/x", "NOTIFY_FORMAT": "slack", "NOTIFY_SECRET": SECRET}, "NOTIFY_FORMAT"),
    ({"NOTIFY_ON": "mismatch,exploded"}, "NOTIFY_ON"),
])
def test_notification_settings_are_checked_at_cold_start(emulator, env, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(function_env(emulator, **env))
    assert caught.value.variable == variable
    assert "key=k" not in str(caught.value)


def test_a_missing_notify_secret_is_reported_with_the_other_problems(emulator):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(function_env(emulator, NOTIFY_URL="https://example.com/hook", CONCURRENCY="0"))
    assert "NOTIFY_SECRET" in str(caught.value) and "CONCURRENCY" in str(caught.value)


def test_robot_urls_pick_their_format_when_notify_format_is_unset(emulator):
    settings = Settings.from_env(function_env(
        emulator, NOTIFY_URL="https://oapi.dingtalk.com/robot/send?access_token=t,https://example.com/hook",
        NOTIFY_SECRET=SECRET))
    from handlers.config import notify_format_of
    assert [notify_format_of(u, settings.notify_format) for u in settings.notify_urls] == ["dingtalk", "json"]
    assert settings.notify_on == {"mismatch", "missing", "error", "failed-job"}


# --- what CI has not confirmed is never announced ----------------------------------------------

def register(emulator, body: bytes) -> None:
    detail = xmltodict.parse(body)["Response"]["JobsDetail"]
    emulator.register_job(detail["Input"]["BucketId"], detail)


def messages(receiver) -> list[dict]:
    return [json.loads(r.body)["data"] for r in receiver.requests]


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


# --- what a key, a reason or CI says is shown as text (issue 19, defect 9) -------------------------

# A key may hold anything but control characters: each markdown construct the robots render.
EVIL_KEY = ('out/x` [open](https://evil.example/phish) ![i](https://evil.example/p.png) <https://evil.example/> '
            '<font color="warning">**urgent**</font> <@all> &lt;b&gt; _em_ ~~s~~ | # \\`.mp3')
EVIL_MESSAGE = ("voice model crashed\n# Heading\n> quote\n- item\n1. first\n\n[re-run](https://evil.example/)"
                "\r\n```\ncode\n``` <@all>\u2028tail")
OUR_PREFIXES = ("### ", "> ", "- ", "Request id: ")


def commonmark_text(markdown_text: str) -> str:
    """What a CommonMark renderer shows of text holding no markup: backslash escapes and entities resolved."""
    import html
    import re
    return html.unescape(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown_text))


def live_markup(markdown_text: str) -> str:
    """The characters of `markdown_text` that a renderer could take as markup: what is left once
    backslash escapes (CommonMark's) and character references are taken out, and of that only the
    characters that open a link, an image, a code span, HTML, an autolink, a mention, emphasis,
    strikethrough or a table cell."""
    import re
    plain = re.sub(r"\\[!-/:-@\[-`{-~]|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]*);", "", markdown_text)
    plain = re.sub(r"(?<=[^\W_])_+(?=[^\W_])", "", plain)  # inside a word CommonMark takes no _ for emphasis
    return "".join(c for c in plain if c in "[]`<*_~|")


def assert_text_only(content: str, expected_lines: int) -> None:
    lines = content.split("\n")
    assert len(lines) == expected_lines, lines  # nothing from a key or CI started a line (a block) of its own
    for line in lines:
        assert line == "" or line.startswith(OUR_PREFIXES), line
        body = line.split(" ", 1)[1] if line.startswith(OUR_PREFIXES[:3]) else line
        assert live_markup(body.replace("**mismatch**", "").replace("**missing**", "")) == "", line
    assert "](" not in content and "<" not in content


def test_a_key_and_cis_message_reach_wecom_as_text(emulator, make_app):
    """Red-team finding: a backtick in a key closed the code span it was put in, and the link after
    it was live in the team's chat; CI's Message went out as it was, newlines and all."""
    from xml.sax.saxutils import escape
    emulator.put_object(BUCKET, EVIL_KEY, b"corrupt")
    mismatch = job_xml(md5s={escape(EVIL_KEY): md5(b"expected")}, names=[])
    failed = job_xml(md5s=None, names=[], state="Failed", code="InternalError", message=escape(EVIL_MESSAGE),
                     job_id="j0000000000000000000000000000002")
    with WebhookReceiver(kind="wecom") as robot:
        app = make_app(NOTIFY_URL=robot.url("/cgi-bin/webhook/send?key=k"), NOTIFY_FORMAT="wecom", ACTION_FAILED="move")
        assert invoke(app, http_event(mismatch))[0] == 200
        assert invoke(app, http_event(failed))[0] == 200
        first, second = (m.json()["markdown"]["content"] for m in robot.requests)
    assert emulator.object_bytes(BUCKET, "quarantine/" + EVIL_KEY) == b"corrupt"
    # heading, job, bucket, blank, the object, blank, request id
    assert_text_only(first, expected_lines=7)
    (object_line,) = [line for line in first.split("\n") if line.startswith("- ")]
    assert EVIL_KEY in commonmark_text(object_line) and "quarantine/" + EVIL_KEY in commonmark_text(object_line)
    # heading, job, bucket, CI says, blank, blank, request id
    assert_text_only(second, expected_lines=7)
    (ci_says,) = [line for line in second.split("\n") if "CI says" in line]
    shown = commonmark_text(ci_says)
    assert "voice model crashed # Heading > quote - item 1. first" in shown and "[re-run](https://evil.example/)" in shown


def evil_notice(objects: int = 1, reason: str = "the content's MD5 is x\n# not a heading [x](https://evil.example/)",
                outcome: str = "failed") -> Notice:
    shown = tuple(AffectedObject(f"{EVIL_KEY}{i}", "mismatch", reason, "quarantine/" + EVIL_KEY) for i in range(objects))
    return Notice(job_id="j1`[x](https://evil.example/)", job_type="Voice\nSeparate", state="Success\n# h",
                  outcome=outcome, bucket="b-1<@all>", region="ap-x\r\n> q", code="E\n1", message=EVIL_MESSAGE,
                  objects=shown, counts={"mismatch": objects}, request_id="r\n1")


@pytest.mark.parametrize("text, shown", [
    ("out/my_file-1 (live).mp3", "out/my_file-1 (live).mp3"),  # what keys usually are stays as it is
    ("[a](https://e.example/)", "\\[a\\]\\(https://e.example/)"),
    ("![i](https://e.example/p.png)", "!\\[i\\]\\(https://e.example/p.png)"),
    ("a`b``c", "a\\`b\\`\\`c"), ("**b** *i* _i_ ~~s~~", "\\*\\*b\\*\\* \\*i\\* \\_i\\_ \\~\\~s\\~\\~"),
    ("<font color=\"info\">x</font> <@all> <https://e.example/>",
     "&lt;font color=\"info\">x&lt;/font> &lt;@all> &lt;https://e.example/>"),
    ("&lt; &#60; &#x3c; AT&T", "&amp;lt; &amp;\\#60; &amp;\\#x3c; AT&T"), ("a\\", "a\\\\"), ("# x | y", "\\# x \\| y"),
    ("a\nb\r\nc\u2028d\u2029e\x0bf\x1bg\u202eh", "a b  c d e f g h"),
])
def test_md_inline_shows_the_text_itself(text, shown):
    assert md_inline(text) == shown
    assert commonmark_text(md_inline(text)) == one_line(text) and live_markup(md_inline(text)) == ""


def test_a_dingtalk_message_has_a_plain_one_line_title_and_text_only_markdown():
    request = build_request(evil_notice(), "https://oapi.dingtalk.com/robot/send?access_token=t", "dingtalk", "", 0.0)
    body = json.loads(request.body)
    assert "\n" not in body["markdown"]["title"] and body["markdown"]["title"].startswith("CI outputs of job j1`[x]")
    # heading, job, bucket, CI says, blank, the object, blank, request id
    assert_text_only(body["markdown"]["text"], expected_lines=8)


def test_a_feishu_post_holds_only_text_elements_one_line_each():
    """Feishu's `text` element is shown as it is; the rows are built as objects, so a key that
    looks like JSON (closing the element, opening a link element) is only text."""
    key = 'out/"}],[{"tag":"a","href":"https://evil.example/","text":"open"}],[{"tag":"at","user_id":"all"}].mp3'
    notice = dataclasses.replace(evil_notice(), objects=(AffectedObject(key, "mismatch", "r\n[x](y)", ""),))
    body = json.loads(build_request(notice, "https://open.feishu.cn/open-apis/bot/v2/hook/h", "feishu", "", 0.0).body)
    post = body["content"]["post"]["zh_cn"]
    assert "\n" not in post["title"]
    assert all(len(row) == 1 and set(row[0]) == {"tag", "text"} and row[0]["tag"] == "text" for row in post["content"])
    texts = [row[0]["text"] for row in post["content"]]
    assert all("\n" not in t and "\r" not in t for t in texts)
    assert f"{key}: mismatch (r [x](y))" in texts and any("voice model crashed # Heading" in t for t in texts)


def test_a_clipped_message_ends_on_no_half_escape():
    content = markdown(evil_notice(objects=MAX_OBJECTS_LISTED))
    assert len(content.encode()) <= 4096 and content.endswith("\n…")
    cut = content[:-2].rsplit("\n", 1)[1]  # the line the clip went through
    assert not re.search(r"(?<!\\)(\\\\)*\\$|&#?[A-Za-z0-9]*$", cut), cut
    assert_text_only(content[:-2], expected_lines=content.count("\n"))


@pytest.mark.parametrize("short_by", range(24))
def test_a_clip_through_an_escape_leaves_no_half_of_it(short_by):
    """Wherever the 3,500-byte cut falls, no lone backslash (which would escape the "…") and no
    half character reference is left."""
    head = "### h\n- x "
    text = head + "Z" * (MAX_ROBOT_TEXT - len(head) - short_by) + md_inline("<&lt;\\[x`") * 4
    clipped = _clip(text)
    assert clipped.endswith("\n…") and len(clipped[:-2].encode()) <= MAX_ROBOT_TEXT
    tail = clipped[:-2].rsplit("Z", 1)[1]
    assert not re.search(r"(?<!\\)(\\\\)*\\$|&#?[A-Za-z0-9]*$", tail), tail
    assert live_markup(tail) == "" and commonmark_text(tail) in one_line("<&lt;\\[x`") * 4
