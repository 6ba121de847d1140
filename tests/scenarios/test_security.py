"""Forged and hostile callbacks, end to end: each is refused with a reason, and storage is
never written (nor, for a caller without the token, even read)."""
from __future__ import annotations

import base64
import importlib
import json
import logging
import sys
import time
import tracemalloc

import pytest

from handlers.log import REDACTED, SDK_LOGGER
from localcloud.samples import ci_jobs
from tests.conftest import CALLBACK_TOKEN, SECRETS, function_env, http_event, invoke, md5
from tests.samples import BUCKET, job_xml

DATA = b"audio bytes"
GOOD = job_xml(md5s={"out/a.mp3": md5(DATA)}, names=["out/a.mp3"])


@pytest.fixture
def app(make_app):
    return make_app(VERIFY_WITH_CI="true")


def as_sent(body: bytes | str = GOOD, query: dict | None = None, headers: dict | None = None, path: str = "/"):
    """An event exactly as given: no token unless the test puts one."""
    event = http_event(body)
    event.update(queryString=query or {}, path=path)
    event["headers"].update(headers or {})
    return event


def register(emulator, body: bytes) -> None:
    for bucket, detail in ci_jobs({"body": body.decode()}):
        emulator.register_job(bucket, detail)


def send(app, event) -> tuple[int, dict, dict]:
    return invoke(app, event, through_callback_url=False)


def writes(emulator) -> list:
    return [r for r in emulator.requests if r.is_write]


# --- the token ------------------------------------------------------------------------------

def test_no_token_is_401_and_touches_nothing(emulator, app):
    status, body, headers = send(app, as_sent())
    assert status == 401 and "?token=" in body["error"] and "WWW-Authenticate" in headers
    assert emulator.requests == []


@pytest.mark.parametrize("where", [
    {"query": {"token": "not-the-token"}},
    {"headers": {"X-Callback-Token": "not-the-token"}},
    {"path": "/not-the-token"},
    {"query": {"token": CALLBACK_TOKEN.upper()}},
    {"query": {"token": CALLBACK_TOKEN + "x"}},
])
def test_a_wrong_token_is_403_and_touches_nothing(emulator, app, where):
    status, body, _ = send(app, as_sent(**where))
    assert status == 403 and body == {"error": "the callback token is not valid"}
    assert emulator.requests == []


def test_an_unauthenticated_caller_learns_nothing_else(emulator, app):
    too_big = as_sent(b"x" * (app.settings.max_body_bytes + 1))
    not_post = {**as_sent(), "httpMethod": "GET"}
    assert [send(app, event)[0] for event in (too_big, not_post)] == [401, 401]  # not 413, 405
    assert emulator.requests == []


@pytest.mark.parametrize("where", [
    {"query": {"token": CALLBACK_TOKEN}},
    {"headers": {"x-callback-token": CALLBACK_TOKEN}},
    {"path": f"/{CALLBACK_TOKEN}"},
])
def test_the_token_is_accepted_from_query_header_or_path(emulator, make_app, where):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    status, body, _ = send(make_app(), as_sent(**where))
    assert status == 200 and body["jobs"][0]["outcome"] == "verified"


def test_tokens_can_be_rotated(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    app = make_app(CALLBACK_TOKEN="old-token-1, new-token-2")
    assert [send(app, as_sent(query={"token": t}))[0] for t in ("old-token-1", "new-token-2", CALLBACK_TOKEN)] \
        == [200, 200, 403]


# --- misconfiguration: every callback refused, naming the setting -----------------------------

def load_index(monkeypatch, env: dict[str, str]):
    for name in ("CALLBACK_TOKEN", "ALLOWED_BUCKETS", "ALLOW_UNAUTHENTICATED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("index", None)
    return importlib.import_module("index")


@pytest.mark.parametrize("unset", ["CALLBACK_TOKEN", "ALLOWED_BUCKETS"])
def test_missing_security_settings_refuse_every_callback(emulator, monkeypatch, unset):
    env = {k: v for k, v in function_env(emulator).items() if k != unset}
    index = load_index(monkeypatch, env)
    result = index.main_handler(http_event(GOOD), {"request_id": "r1"})
    body = json.loads(result["body"])
    assert result["statusCode"] == 500 and body["setting"] == unset and unset in body["error"]
    assert emulator.requests == []


def test_allow_unauthenticated_true_accepts_callbacks_without_a_token(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    app = make_app(CALLBACK_TOKEN="", ALLOW_UNAUTHENTICATED="true")
    assert send(app, as_sent())[0] == 200


# --- the allow-lists ------------------------------------------------------------------------

@pytest.mark.parametrize("body, env, reason", [
    (job_xml(md5s={"out/a.mp3": "a" * 32}, names=[], bucket="victim-1250000000"), {},
     "bucket 'victim-1250000000' (Input.BucketId) is not in ALLOWED_BUCKETS"),
    (job_xml(md5s={"private/a": "a" * 32}, names=[]), {"ALLOWED_PREFIXES": "out/"},
     "key 'private/a' in test-123456789 is not under ALLOWED_PREFIXES"),
    (job_xml(md5s={"out/a.mp3": "a" * 32}, names=["other/b"]), {"ALLOWED_PREFIXES": "out/"}, "key 'other/b'"),
])
def test_names_outside_the_allow_lists_are_403_before_any_request(emulator, make_app, body, env, reason):
    emulator.put_object(BUCKET, "private/a", DATA)
    status, result, _ = invoke(make_app(VERIFY_WITH_CI="true", **env), http_event(body))
    assert status == 403 and reason in result["error"]
    assert emulator.requests == []


# --- malformed keys, names and bodies: 400 with a reason -----------------------------------

def json_callback(object_name, md5_value="a" * 32, names=None) -> str:
    output = {"Bucket": BUCKET, "Region": "ap-chongqing", "Md5Info": [{"Md5": md5_value, "ObjectName": object_name}]}
    if names is not None:
        output["ObjectName"] = names
    return json.dumps({"JobsDetail": [{"JobId": "j1", "State": "Success", "Operation": {
        "MediaResult": {"OutputFile": output}}}]})


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
                  + ']><Response><EventName>&lol9;</EventName></Response>')
EXTERNAL_ENTITY = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                   '<Response><EventName>&xxe;</EventName></Response>')


@pytest.mark.slow
@pytest.mark.parametrize("body, reason", [
    (json_callback(" "), "Md5Info[0].ObjectName is required"),
    (json_callback("out/a\x00b"), "control characters"),
    (json_callback("out/a\u2028b"), "control characters"),
    (json_callback("out/../../etc"), "'..' segment"),
    (json_callback("out/a", names=["  "]), "an empty name"),
    (json.dumps({"JobsDetail": {"JobId": "j1", "State": "Success", "Operation": {"MediaResult": {"OutputFile": {
        "Bucket": BUCKET, "Region": "ap-chongqing", "ObjectPrefix": "out/", "ObjectName": [" "]}}}}}),
     "an empty name"),  # it would name the prefix itself
    (json_callback("x" * 851), "longer than COS allows"),
    (json_callback("out/\ud800"), "not valid Unicode"),
    (job_xml(md5s=None, names=["./b"], prefix="out/."), "'..' segment"),  # each part fine, together '..'
    (job_xml(md5s={"o/a": "a" * 32}, names=[], region="ap-x.evil.com"), "is not a region"),
    (job_xml(md5s={"o/a": "a" * 32}, names=[], job_id="j1/../../x"), "is not a CI job id"),
    (BILLION_LAUGHS, "DOCTYPE"),
    (EXTERNAL_ENTITY, "DOCTYPE"),
    ("<Response><JobsDetail>" + "<a>" * 100_000 + "</a>" * 100_000 + "</JobsDetail></Response>", "64 levels"),
    ('{"JobsDetail": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    ('{"JobsDetail": ' + "[" * 65 + "]" * 65 + "}", "64 levels"),
    (b"<Response>\xc3\x28</Response>", "not valid UTF-8"),
    ('{"JobsDetail": [{"JobId": ["j1", "j2"], "State": "Success"}]}', "expected one value"),
    ('{"JobsDetail": [{"JobId": true, "State": "Success"}]}', "expected text"),
    ('{"JobsDetail": [{"JobId": "j1", "State": "Success", "EndTime": 5}]}', "is not a time"),
])
def test_hostile_bodies_are_400_with_a_reason_and_no_request(emulator, app, body, reason):
    if isinstance(body, bytes):  # bytes no JSON string can carry: sent base64-encoded, as a gateway would
        event = {**http_event(""), "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    else:
        event = http_event(body)
    status, result, _ = invoke(app, event)
    assert status == 400 and reason in result["error"], result
    assert emulator.requests == []


def test_entity_bombs_are_refused_fast_in_little_memory(app):
    for body in (BILLION_LAUGHS, EXTERNAL_ENTITY):
        tracemalloc.start()
        started = time.monotonic()
        status, result, _ = invoke(app, http_event(body))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert status == 400 and time.monotonic() - started < 0.5 and peak < 1 << 20
        assert "root:" not in json.dumps(result)  # nothing of /etc/passwd


def test_an_oversized_body_is_413_before_it_is_parsed(emulator, app):
    bomb = BILLION_LAUGHS.replace("<Response>", "<Response>" + " " * (1 << 20))
    status, result, _ = invoke(app, http_event(bomb))
    assert status == 413 and "MAX_BODY_BYTES" in result["error"] and emulator.requests == []


@pytest.mark.parametrize("event", [
    {"httpMethod": "POST", "headers": ["not", "a", "map"]},
    {"httpMethod": "POST", "queryString": "token=x"},
    {"httpMethod": "POST", "body": 10 ** 12},  # bytes(n) would allocate a terabyte
    {"httpMethod": "POST", "body": {"JobsDetail": []}},
])
def test_malformed_events_are_400_not_500(emulator, app, event):
    status, result, _ = send(app, event)
    assert status == 400 and "the event's" in result["error"] and emulator.requests == []


# --- secrets stay out of the log ------------------------------------------------------------

@pytest.mark.slow
def test_main_paths_log_no_secret_and_need_no_redaction(emulator, app, log_lines):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    register(emulator, GOOD)
    events = [http_event(GOOD), as_sent(query={"token": "wrong-token"}), as_sent(path=f"/{CALLBACK_TOKEN}"),
              as_sent(), http_event(b"<Response>"), http_event(BILLION_LAUGHS)]
    statuses = [send(app, event)[0] for event in events]
    emulator.add_fault(service="ci", status=503, times=None)
    emulator.add_fault(method="HEAD", status=500, times=None)
    statuses.append(invoke(app, http_event(GOOD), {"time_limit_in_ms": 2500})[0])
    assert statuses == [200, 403, 200, 401, 400, 400, 503]
    assert log_lines and not [line for line in log_lines for s in (*SECRETS, REDACTED) if s in line]
    rejections = [json.loads(line) for line in log_lines if '"callback rejected"' in line]
    assert [r["status"] for r in rejections] == [403, 401, 400, 400, 503]
    assert rejections[0]["target"] == "/?token=***"


@pytest.mark.slow
def test_the_sdk_logs_through_the_redacting_formatter_without_request_headers(emulator, app, capsys):
    """At DEBUG/INFO the SDK logs request headers (the session token among them): handlers/storage/clients.py
    keeps it above that. Its ERROR lines, should anyone allow them, carry response bodies only,
    and are written by the function's own JSON formatter."""
    sdk = logging.getLogger(SDK_LOGGER)
    assert sdk.getEffectiveLevel() >= logging.ERROR and sdk.propagate is False
    register(emulator, GOOD)
    emulator.add_fault(service="ci", status=503, times=None)
    level = sdk.level
    sdk.setLevel(logging.ERROR)
    try:
        invoke(app, http_event(GOOD), {"time_limit_in_ms": 2500})
    finally:
        sdk.setLevel(level)
    sdk_lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if line.startswith("{") and '"logger": "qcloud_cos' in line]
    assert sdk_lines and all(entry["level"] == "ERROR" for entry in sdk_lines)
    text = json.dumps(sdk_lines)
    assert "ServiceUnavailable" in text  # the response body
    for header in ("security-token", "q-signature", "Authorization"):
        assert header not in text
