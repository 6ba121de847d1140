"""record.py: one message per job and problem across replays and containers, one read of the job's
record per invocation, and a record that cannot be written costs a second message, never a lost one."""
from __future__ import annotations

import json

from localcloud.webhook import WebhookReceiver
from tests.conftest import http_event, invoke, md5
from tests.operations.notifications.conftest import JOB, SECRET, job_lines, mismatch_body, notify_env
from tests.samples import BUCKET, job_xml


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
