"""Every outbound exchange is bounded as a whole by the invocation's deadline, not per socket read.

A server (or a proxy in front of it) that sends its status line and headers a byte at a time
answers every read within requests' timeout, so that timeout never trips: red-team finding, a
4 s invocation held for about 18 s by a notification receiver, which SCF would have killed (no
answer for CI, no report). Each service the function talks to is tried here through the real
entry point against a local server that does exactly that: COS and CI (the emulator's `trickle`
fault), SCF's Invoke (DISPATCH=async) and a webhook (NOTIFY_URL).
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Any

import pytest
import xmltodict

from handlers.app import App
from localcloud.samples import ci_jobs
from localcloud.scf import ScfEmulator
from localcloud.webhook import WebhookReceiver
from tests.checking.test_server_mode_invariants import DATA as DATA_2M  # VERIFY_MODE=server's output, 2.4 MB in parts
from tests.checking.test_server_mode_invariants import (
    output_writes,
    posted,  # noqa: F401  (a fixture)
    put_output,
    refuse_sync_hash,
    server_app,
)
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

pytestmark = pytest.mark.slow  # every exchange trickled until its deadline cuts it

PAUSE = 0.2  # seconds between the bytes a trickling server sends: each read is answered in time
TIME_LIMIT_MS = 4000
DATA = b"x" * 4096
JOB = "j0000000000000000000000000000001"
FUNCTION = {"function_name": "ci-callback-verifier", "namespace": "default", "function_version": "$LATEST",
            "request_id": "http-request-1"}
SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()


def within_time_limit(app: App, body: bytes, time_limit_ms: int = TIME_LIMIT_MS,
                      context: dict[str, Any] | None = None) -> tuple[int, dict, dict, float]:
    """Invoke on a thread of its own and give it the time limit (and two seconds to show how far
    past it ran): SCF kills an invocation at its time limit, with no answer for CI."""
    limit = time_limit_ms / 1000
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["answer"] = invoke(app, http_event(body), {"request_id": "test-request",
                                                           "time_limit_in_ms": time_limit_ms, **(context or {})})
        except BaseException as exc:  # re-raised on the test's thread
            box["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, name="invocation", daemon=True)
    thread.start()
    thread.join(limit + 2)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"the invocation still ran {elapsed:.1f} s into a {limit:g} s time limit"
    if "error" in box:
        raise box["error"]
    assert elapsed < limit, f"the invocation took {elapsed:.2f} s of a {limit:g} s time limit"
    status, answer, headers = box["answer"]
    return status, answer, headers, elapsed


def one_output(emulator, key: str = "out/a.mp3", data: bytes = DATA, part_size: int | None = None) -> bytes:
    emulator.put_object(BUCKET, key, data, part_size=part_size)
    return job_xml(md5s={key: md5(data)}, names=[key])


# --- the emulators' trickle -----------------------------------------------------------------

def test_the_cos_emulator_trickles_the_head_of_its_answer(emulator):
    """The fault the tests below rely on: the first bytes come at once, the head takes seconds."""
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    emulator.add_fault(method="HEAD", trickle=PAUSE)
    with socket.create_connection((emulator.host, emulator.port), timeout=PAUSE * 5) as conn:
        conn.sendall(f"HEAD /out/a.mp3 HTTP/1.1\r\nHost: {BUCKET}.cos.{REGION}.myqcloud.com\r\n\r\n".encode())
        started, received = time.monotonic(), b""
        while time.monotonic() - started < 1.0:
            received += conn.recv(1)  # every read is answered well within the socket's timeout
    assert 3 <= len(received) <= 1.0 / PAUSE + 2  # a byte every PAUSE seconds
    assert received == b"HTTP/1.1 200 OK"[:len(received)]


# --- COS and CI -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, query, verdict", [
    ("HEAD", None, "error"),
    ("GET", "tagging", "verified"),  # by its ETag; the tags could not be read, so none are written
], ids=["head", "tag-read"])
def test_cos_trickling_its_headers_is_503_within_the_deadline(emulator, make_app, method, query, verdict):
    body = one_output(emulator)
    fault = emulator.add_fault(method=method, query=query, trickle=PAUSE, times=None)
    status, answer, headers, _ = within_time_limit(make_app(), body)
    assert status == 503 and headers["Retry-After"] == "30" and answer["jobs"][0]["outcome"] == "retry"
    obj = answer["jobs"][0]["objects"][0]
    assert obj["verdict"] == verdict and obj["actions"] == [] and "no whole answer within" in obj["reason"]
    assert fault.hits >= 1
    assert [r for r in emulator.requests if r.is_write] == []


def test_cos_trickling_a_streamed_body_is_cut_at_the_deadline(emulator, make_app):
    """A content hash reads for as long as the invocation lasts, but no longer: a body that
    comes a byte at a time is cut at the deadline like one that is merely large."""
    body = one_output(emulator, part_size=1024)  # a multipart ETag: only the content decides
    fault = emulator.add_fault(method="GET", key="out/a.mp3", query="!", trickle_body=PAUSE, times=None)
    status, answer, _, _ = within_time_limit(make_app(), body)
    assert status == 503 and fault.hits == 1
    obj = answer["jobs"][0]["objects"][0]
    assert obj["verdict"] == "error" and obj["actions"] == []
    assert [r for r in emulator.requests if r.is_write] == []


def test_ci_trickling_its_headers_is_503_within_the_deadline(emulator, make_app):
    body = one_output(emulator)
    for bucket, detail in ci_jobs({"body": body.decode()}):
        emulator.register_job(bucket, detail)
    fault = emulator.add_fault(service="ci", trickle=PAUSE, times=None)
    status, answer, headers, _ = within_time_limit(make_app(VERIFY_WITH_CI="true"), body)
    assert status == 503 and headers["Retry-After"] == "30"
    assert "CI's job API did not answer" in answer["error"]
    assert fault.hits >= 1 and [r for r in emulator.requests if r.service == "cos"] == []


# --- only an object's content is read until the deadline; every other answer within COS_TIMEOUT_SECONDS --

def test_a_content_hash_may_read_past_cos_timeout_until_the_deadline(emulator, make_app):
    """The one answer the deadline alone bounds: an output's body streamed through MD5. It came
    slowly (about 2.4 s, a byte every PAUSE seconds) with COS_TIMEOUT_SECONDS=1 and is verified."""
    data = b"twelve bytes"
    body = one_output(emulator, data=data, part_size=4)  # a multipart ETag: only the content decides
    fault = emulator.add_fault(method="GET", key="out/a.mp3", query="!", trickle_body=PAUSE, times=None)
    status, answer, _, elapsed = within_time_limit(make_app(COS_TIMEOUT_SECONDS="1"), body, 6000)
    obj = answer["jobs"][0]["objects"][0]
    assert status == 200 and obj["verdict"] == "verified" and obj["method"] == "content"
    assert fault.hits == 1 and elapsed > len(data) * PAUSE - 0.5


@pytest.mark.parametrize("fault", [{"trickle": PAUSE}, {"reset": True}, {"trickle_body": PAUSE}],
                         ids=["trickled-head", "reset", "trickled-body"])
def test_a_sync_filehash_answer_that_breaks_off_or_trickles_is_a_retry_not_a_crash(emulator, make_app, fault):
    """Red-team finding (D6): the SDK's file_hash streams its answer, then reads it and parses the
    XML outside the exchange; an answer cut (by the deadline's watch, or a reset) reached
    xml_to_dict empty, and its ParseError escaped CiHashing.sync_md5: the invocation answered 500
    (`xml.etree.ElementTree.ParseError: no element found`) instead of 503 with the object in error."""
    put_output(emulator)
    emulator.add_fault(method="GET", query="ci-process", times=None, **fault)
    status, answer, headers, _ = within_time_limit(server_app(make_app), job_xml({"out/big.wav": md5(DATA_2M)}, []))
    assert status == 503 and headers["Retry-After"] == "30", (status, answer)
    assert answer["jobs"][0]["objects"][0]["verdict"] == "error"
    assert output_writes(emulator) == []


def test_a_trickling_sync_filehash_answer_is_cut_at_cos_timeout_not_the_deadline(emulator, make_app):
    """Red-team finding (D6): the filehash answer is streamed by the SDK, and the adapter let every
    streamed answer read until the deadline (+0.5 s): with COS_TIMEOUT_SECONDS=1 and a 10 s limit
    one trickling answer held the invocation about 9.5 s (and then crashed it, 500). Now each try
    is cut at 1 s: the tries (with their back-off) end the invocation long before its limit."""
    put_output(emulator)
    fault = emulator.add_fault(method="GET", query="ci-process", trickle_body=PAUSE, times=None)
    app = server_app(make_app, COS_TIMEOUT_SECONDS="1")
    status, answer, _, elapsed = within_time_limit(app, job_xml({"out/big.wav": md5(DATA_2M)}, []), 10000)
    assert status == 503 and answer["jobs"][0]["objects"][0]["verdict"] == "error", (status, answer)
    assert fault.hits >= 2, "one answer took the whole invocation"
    assert elapsed < fault.hits * 1.0 + 3, f"{fault.hits} filehash answers took {elapsed:.1f} s (COS_TIMEOUT_SECONDS=1)"


def test_a_trickling_report_read_is_cut_at_cos_timeout_not_the_deadline(emulator, make_app, posted):  # noqa: F811
    """Red-team finding (D7): the audit report read before a merge (ObjectStore.get_bytes, also the
    hash-jobs record) is a small answer of the function's own, streamed by the SDK, and was bounded
    by the deadline alone: with COS_TIMEOUT_SECONDS=1 one trickling read held a 12 s invocation
    11.5 s. Now each try is cut at 1 s, and the report is given up well inside the limit."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    app = server_app(make_app, REPORT_PREFIX="reports/", COS_TIMEOUT_SECONDS="1")
    first = invoke(app, http_event(job_xml({"out/big.wav": md5(b"what CI wrote")}, [])))
    assert first[1]["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    fault = emulator.add_fault(method="GET", key=f"reports/{JOB}.json", trickle_body=PAUSE, times=None)
    callback = posted.pop()
    started = time.monotonic()
    result = app.handle(http_event(callback.body, callback.content_type) | {"queryString": {"token": "test-token"}},
                        {"request_id": "r", "time_limit_in_ms": 12000})
    elapsed = time.monotonic() - started
    answer = json.loads(result["body"])
    assert answer["jobs"][0]["objects"][0]["verdict"] == "mismatch"  # decided; only the report is not written
    assert any("was not written" in problem for problem in answer["problems"])
    assert 1 <= fault.hits <= 4
    assert elapsed < fault.hits * 1.0 + 2.5, f"{fault.hits} report reads took {elapsed:.1f} s (COS_TIMEOUT_SECONDS=1)"


@pytest.mark.parametrize("fault", [{"trickle": PAUSE}, {"trickle_body": PAUSE}], ids=["head", "body"])
def test_a_file_job_api_trickling_its_answer_is_a_bounded_retry(emulator, make_app, fault):
    """CI's file-job calls (POST /file_jobs) trickling their answer: each is cut within the limit, 503."""
    refuse_sync_hash(emulator)
    put_output(emulator)
    emulator.add_fault(service="ci", times=None, **fault)
    status, answer, _, _ = within_time_limit(server_app(make_app), job_xml({"out/big.wav": md5(DATA_2M)}, []))
    assert status == 503, (status, answer)
    assert [r for r in output_writes(emulator) if r.service == "cos"] == []  # no pending tag


def test_ci_describe_trickling_its_body_is_cut_at_cos_timeout(emulator, make_app):
    """DescribeMediaJob's answer trickling its body, with COS_TIMEOUT_SECONDS=1 and a 10 s limit:
    each try is cut at 1 s."""
    put_output(emulator)
    body = job_xml({"out/big.wav": md5(DATA_2M)}, [])
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    fault = emulator.add_fault(service="ci", trickle_body=PAUSE, times=None)
    status, answer, _, elapsed = within_time_limit(make_app(VERIFY_WITH_CI="true", COS_TIMEOUT_SECONDS="1"),
                                                   body, 10000)
    assert status == 503 and "CI's job API did not answer" in answer["error"], (status, answer)
    assert elapsed / fault.hits < 1.6, f"{fault.hits} CI answers took {elapsed:.1f} s (COS_TIMEOUT_SECONDS=1)"


# --- SCF's Invoke (DISPATCH=async) ------------------------------------------------------------

@pytest.fixture
def scf():
    with ScfEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, region=REGION) as emu:
        yield emu


def test_scf_trickling_its_headers_falls_back_to_inline_processing(emulator, scf, make_app, log_lines):
    """The Invoke waits at most half the time left; then the callback is processed inline."""
    body = one_output(emulator)
    scf.add_fault(action="Invoke", trickle=PAUSE, times=None)
    app = make_app(DISPATCH="async", SCF_ENDPOINT=scf.endpoint, DEFAULT_REGION=REGION)
    status, answer, _, _ = within_time_limit(app, body, 6000, FUNCTION)
    assert status == 200 and answer["jobs"][0]["outcome"] == "verified"
    assert [call.action for call in scf.requests] == ["Invoke"]
    assert any(json.loads(line)["message"] == "async dispatch failed: processing inline" for line in log_lines)


def test_scf_trickling_its_headers_with_too_little_time_left_is_503(emulator, scf, make_app):
    body = one_output(emulator)
    scf.add_fault(action="Invoke", trickle=PAUSE, times=None)
    app = make_app(DISPATCH="async", SCF_ENDPOINT=scf.endpoint, DEFAULT_REGION=REGION)
    # 2.5 s to work in: the Invoke may take 1 s, after which 1.5 s is too little to process inline.
    status, answer, headers, _ = within_time_limit(app, body, 3500, FUNCTION)
    assert status == 503 and headers["Retry-After"] == "30" and "inline" in answer["error"]
    assert [call.action for call in scf.requests] == ["Invoke"]
    assert emulator.requests == []  # too little time left to start processing inline


# --- a webhook (NOTIFY_URL) -------------------------------------------------------------------

def test_a_receiver_trickling_its_headers_fails_the_notification_only(emulator, make_app, log_lines):
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    body = job_xml(md5s={"out/bad.mp3": md5(b"expected")}, names=[])
    with WebhookReceiver(secret=SECRET) as receiver:
        receiver.answer(trickle_head=PAUSE)
        app = make_app(NOTIFY_URL=receiver.url(), NOTIFY_SECRET=SECRET, REPORT_PREFIX="reports/")
        status, answer, _, _ = within_time_limit(app, body)
        assert len(receiver.requests) >= 1
    assert status == 200  # a notification never changes the status or a verdict
    assert answer["jobs"][0]["outcome"] == "failed" and answer["jobs"][0]["objects"][0]["verdict"] == "mismatch"
    (job,) = [e for e in map(json.loads, log_lines) if e["message"] == "job processed"]
    assert job["notification"] == "failed" and job["notificationsFailed"] == 1
    assert emulator.keys(BUCKET, "reports/") == [f"reports/{JOB}.json"]  # the audit report is written
    assert [k for k in emulator.keys(BUCKET) if "/notified/" in k] == []  # not remembered: a replay tries again


# --- the mechanism ----------------------------------------------------------------------------

def test_many_exchanges_share_one_watchdog_thread(emulator, make_app):
    keys = [f"out/{i}.mp3" for i in range(8)]
    for key in keys:
        emulator.put_object(BUCKET, key, DATA, part_size=1024)
    body = job_xml(md5s={key: md5(DATA) for key in keys}, names=keys)
    app = make_app()
    for _ in range(2):
        status, answer, _ = invoke(app, http_event(body))
        assert status == 200 and {o["verdict"] for o in answer["jobs"][0]["objects"]} == {"verified"}
    watchdogs = [t for t in threading.enumerate() if t.name == "exchange-watchdog"]
    assert len(watchdogs) == 1 and watchdogs[0].daemon
