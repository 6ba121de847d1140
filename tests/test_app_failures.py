"""Transient COS failures end in a retryable answer; bad requests in a 4xx and no requests."""
from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
import time
import tracemalloc

import pytest
import xmltodict

from handlers.intake.models import OutputObject
from handlers.storage.tags import VERIFY_TAG
from tests.conftest import function_env, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

BODY = b"x" * 4096


def one_object_event(key: str = "out/a", data: bytes = BODY) -> dict:
    return http_event(job_xml(md5s={key: md5(data)}, names=[key]))


def test_503_once_is_retried(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    fault = emulator.add_fault(method="HEAD", status=503, times=1)
    status, body, _ = invoke(app, one_object_event())
    assert status == 200 and body["jobs"][0]["objects"][0]["verdict"] == "verified"
    # The HEAD that failed, its retry, and the HEAD after the tag write.
    assert fault.hits == 1 and len([r for r in emulator.requests if r.method == "HEAD"]) == 3


@pytest.mark.slow
def test_503_always_ends_in_503_with_retry_after_and_no_writes(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    emulator.add_fault(method="HEAD", status=503, times=None)
    status, body, headers = invoke(app, one_object_event())
    assert status == 503 and headers["Retry-After"] == "30"
    obj = body["jobs"][0]["objects"][0]
    assert (obj["verdict"], obj["method"], obj["actions"]) == ("error", "none", [])
    assert "503" in obj["reason"]
    assert body["jobs"][0]["outcome"] == "retry"
    assert [r for r in emulator.requests if r.is_write] == []


def test_connection_reset_is_retried(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    emulator.add_fault(method="HEAD", reset=True, times=1)
    status, body, _ = invoke(app, one_object_event())
    assert status == 200 and body["jobs"][0]["objects"][0]["verdict"] == "verified"


@pytest.mark.slow
def test_truncated_body_is_never_judged(emulator, app):
    data = bytes(range(256)) * 8192  # 2 MiB in two parts: only the content can decide
    emulator.put_object(BUCKET, "out/a", data, part_size=1 << 20)
    emulator.add_fault(method="GET", key="out/a", query="!", truncate=1000, times=None)
    status, body, _ = invoke(app, one_object_event("out/a", data))
    obj = body["jobs"][0]["objects"][0]
    assert status == 503 and obj["verdict"] == "error"
    assert emulator.tags(BUCKET, "out/a") == {}


def test_truncated_body_once_then_verified(emulator, app):
    data = bytes(range(256)) * 8192
    emulator.put_object(BUCKET, "out/a", data, part_size=1 << 20)
    emulator.add_fault(method="GET", key="out/a", query="!", truncate=1000, times=1)
    status, body, _ = invoke(app, one_object_event("out/a", data))
    assert status == 200 and body["jobs"][0]["objects"][0]["method"] == "content"


@pytest.mark.slow
def test_tag_write_failure_keeps_the_verdict_and_asks_for_a_retry(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    emulator.add_fault(method="PUT", query="tagging", status=503, times=None)
    status, body, _ = invoke(app, one_object_event())
    obj = body["jobs"][0]["objects"][0]
    assert status == 503 and obj["verdict"] == "verified" and obj["actions"] == []
    assert "tagging failed" in obj["reason"]


def test_access_denied_is_not_retried(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    emulator.add_fault(method="HEAD", status=403, code="AccessDenied", times=None)
    status, body, _ = invoke(app, one_object_event())
    assert status == 503 and body["jobs"][0]["objects"][0]["verdict"] == "error"
    assert len([r for r in emulator.requests if r.method == "HEAD"]) == 1


@pytest.mark.slow
def test_retries_stop_within_the_time_budget(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    emulator.add_fault(method="HEAD", status=503, delay=0.3, times=None)
    started = time.monotonic()
    status, _, _ = invoke(app, one_object_event(), {"time_limit_in_ms": 2500})
    assert status == 503 and time.monotonic() - started < 2.5


def test_parallel_checks_are_bounded_by_concurrency(emulator, make_app):
    keys = [f"out/{i}" for i in range(24)]
    for key in keys:
        emulator.put_object(BUCKET, key, key.encode())
    emulator.add_fault(method="HEAD", delay=0.05, times=None)
    app = make_app(CONCURRENCY="4")
    status, body, _ = invoke(app, http_event(job_xml(md5s={k: md5(k.encode()) for k in keys}, names=[])))
    assert status == 200 and {o["verdict"] for o in body["jobs"][0]["objects"]} == {"verified"}
    heads = [r for r in emulator.requests if r.method == "HEAD"]
    peak = max(sum(1 for o in heads if o.started <= h.started < o.finished) for h in heads)
    assert 2 <= peak <= 4


def test_content_hashing_memory_stays_flat(emulator, app):
    size = 48 << 20
    chunk = bytes(range(256)) * 4096
    emulator.put_object(BUCKET, "out/big", (chunk for _ in range(size // len(chunk))), part_size=8 << 20)
    target = OutputObject(BUCKET, REGION, "out/big", "0" * 32)
    state = app.store.head(target)
    tracemalloc.start()
    digest = app.reader.content_md5(target, state.etag)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    expected = hashlib.md5()
    for _ in range(size // len(chunk)):
        expected.update(chunk)
    assert digest == expected.hexdigest()
    assert peak < 8 << 20, f"peak traced memory {peak} bytes while hashing {size}"


# --- requests refused before any work ---------------------------------------------------

@pytest.mark.parametrize("event, status, reason", [
    (http_event(b"<Response/>", method="GET"), 405, "not allowed"),
    (http_event(b"<Response><JobsDetail>"), 400, "malformed callback: the body is not well-formed XML"),
    (http_event(b"hello"), 400, "neither XML nor JSON"),
    (http_event(job_xml(md5s={"o/a": "nothex"}, names=[])), 400, "is not an MD5"),
    (http_event(b"<Response>" + b" " * (1 << 20) + b"</Response>"), 413, "MAX_BODY_BYTES"),
    ({"httpMethod": "POST", "isBase64Encoded": True, "body": "%%%"}, 400, "base64"),
])
def test_rejections_say_why_and_touch_nothing(emulator, app, event, status, reason):
    got, body, headers = invoke(app, event)
    assert got == status and reason in body["error"]
    if status == 405:
        assert headers["Allow"] == "POST"
    assert emulator.requests == []


def test_unknown_events_are_refused(app):
    with pytest.raises(ValueError, match="unsupported event"):
        app.handle({"Records": [{"cos": {"cosObject": {}}}]}, {})


# --- the entry point --------------------------------------------------------------------

def load_index(monkeypatch, env: dict[str, str]):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("index", None)
    return importlib.import_module("index")


def test_main_handler_end_to_end(emulator, monkeypatch):
    emulator.put_object(BUCKET, "out/a", BODY)
    index = load_index(monkeypatch, function_env(emulator))
    result = index.main_handler(one_object_event(), {"request_id": "r1", "time_limit_in_ms": 10000})
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is False
    assert emulator.tags(BUCKET, "out/a")[VERIFY_TAG] == "verified"


def test_misconfiguration_answers_500_naming_the_setting(emulator, monkeypatch):
    index = load_index(monkeypatch, function_env(emulator, CONCURRENCY="lots"))
    result = index.main_handler(one_object_event(), {})
    body = json.loads(result["body"])
    assert result["statusCode"] == 500 and body["setting"] == "CONCURRENCY"
    assert re.search(r"CONCURRENCY: 'lots' is not a whole number", body["error"])
    assert emulator.requests == []


@pytest.mark.slow
def test_a_hanging_request_is_cut_at_the_invocations_deadline(emulator, app):
    emulator.put_object(BUCKET, "out/a", BODY)
    emulator.add_fault(method="HEAD", delay=8, times=None)  # COS_TIMEOUT_SECONDS is 10
    started = time.monotonic()
    status, body, _ = invoke(app, one_object_event(), {"time_limit_in_ms": 3000})
    elapsed = time.monotonic() - started
    assert status == 503 and body["jobs"][0]["objects"][0]["verdict"] == "error"
    assert elapsed < 3.0, f"the invocation ran {elapsed:.1f} s past a 3 s limit"


@pytest.mark.slow
def test_a_hanging_ci_look_up_is_cut_at_the_invocations_deadline(emulator, make_app):
    body = job_xml(md5s={"out/a": md5(BODY)}, names=["out/a"])
    detail = xmltodict.parse(body)["Response"]["JobsDetail"]
    emulator.register_job(BUCKET, detail)
    emulator.add_fault(service="ci", delay=8, times=None)  # COS_TIMEOUT_SECONDS is 10
    app = make_app(VERIFY_WITH_CI="true")
    started = time.monotonic()
    status, body_json, headers = invoke(app, http_event(body), {"time_limit_in_ms": 3000})
    elapsed = time.monotonic() - started
    assert status == 503 and headers["Retry-After"] and "CI" in body_json["error"]
    assert elapsed < 3.0, f"the invocation ran {elapsed:.1f} s past a 3 s limit"
    assert [r for r in emulator.requests if r.service == "cos"] == []
