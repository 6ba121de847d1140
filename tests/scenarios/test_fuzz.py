"""Fuzzing the whole entry point: no event shape, header, query or body may end in an unhandled
exception or a 5xx, and a callback CI does not confirm never writes to storage.

The default budget (FUZZ_EXAMPLES, 10,500 examples over the four targets) runs in CI in well
under a minute; for a long run:

    FUZZ_EXAMPLES=200000 python3 dev.py test tests/scenarios/test_fuzz.py
"""
from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.app import App
from handlers.settings import Settings
from localcloud.cos import CosEmulator
from localcloud.samples import restamp
from tests.conftest import CALLBACK_TOKEN, SECRET_ID, SECRET_KEY, TOKEN, md5
from tests.samples import BUCKET, FIXTURES, REGION

pytestmark = pytest.mark.slow  # thousands of generated events

TOTAL_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10500"))
SHARES = {"event": 0.3, "body": 0.3, "document": 0.25, "mutation": 0.15}
CONTEXT = {"request_id": "fuzz", "time_limit_in_ms": 10000}
DATA = b"fuzzed output bytes"


def budget(target: str):
    return settings(max_examples=max(1, int(TOTAL_EXAMPLES * SHARES[target])), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def make_app(emulator: CosEmulator, **env: str) -> App:
    base = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint, "CALLBACK_TOKEN": CALLBACK_TOKEN,
            "ALLOWED_BUCKETS": BUCKET, "LOG_LEVEL": "error", "COS_TIMEOUT_SECONDS": "2"}
    return App(Settings.from_env({**base, **env}))


@pytest.fixture(scope="module")
def guarded():
    """The production default: CI's job API knows none of the fuzzed jobs, so nothing may be written."""
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emulator:
        emulator.create_bucket(BUCKET, region=REGION)
        emulator.put_object(BUCKET, "out/a.mp3", DATA)
        app = make_app(emulator, VERIFY_WITH_CI="true")
        yield app, emulator
        app.close()
        assert [r for r in emulator.requests if r.is_write] == []


@pytest.fixture(scope="module")
def trusting():
    """No CI cross-check: fuzzed callbacks that parse reach COS, with fuzzed keys."""
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emulator:
        emulator.create_bucket(BUCKET, region=REGION)
        emulator.put_object(BUCKET, "out/a.mp3", DATA)
        app = make_app(emulator, VERIFY_WITH_CI="false")
        yield app, emulator
        app.close()


def handled(app: App, event: dict) -> int:
    result = app.handle(event, CONTEXT)
    status = result["statusCode"]
    payload = json.loads(result["body"])
    assert status < 500, payload
    assert ("error" in payload) == (status >= 400), payload
    return status


def event_with(body: str, token: bool = True) -> dict:
    return {"body": body, "headers": {"content-type": "application/xml"}, "httpMethod": "POST", "path": "/",
            "queryString": {"token": CALLBACK_TOKEN} if token else {}}


# --- values: ordinary, and the ones that have broken parsers before ------------------------

TRICKY = ["", " ", "-", ".", "..", "/", "/..", "a/../b", "out/./..", "\x00", "\t", "\u2028", "\x85", "\ud800",
          "<!DOCTYPE", "&amp;", "&#0;", "]]>", "{key}", "%s", "x" * 900, "0" * 32, "Success", "Failed", "Running",
          "2022-07-01T10:12:26+0800", "2022-07-01 10:12:26", "-1", "1e309", "NaN", "Infinity", "9" * 5000,
          REGION, "ap-x.evil.com", BUCKET, "other-1250000000", "UPPER-1", "中文/音频.mp3", "j1", "j1,j2", "j/../x",
          CALLBACK_TOKEN, "#text", "@attr"]
FIELDS = ["JobsDetail", "JobId", "State", "Code", "Message", "Tag", "EndTime", "Input", "BucketId", "Region",
          "Operation", "MediaResult", "OutputFile", "Bucket", "ObjectName", "ObjectPrefix", "Md5Info", "Md5",
          "MediaInfo", "Format", "Size", "Stream", "Audio", "Output", "Object", "AuObject", "#text", "Response"]

text = st.one_of(st.sampled_from(TRICKY), st.text(max_size=24))
scalar = st.one_of(text, st.integers(), st.floats(), st.booleans(), st.none())
anything = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(FIELDS), text), inner, max_size=4)),
    max_leaves=10)


def either(*good: Any) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes anything at all."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), anything)


keys = st.one_of(st.sampled_from(["out/a.mp3", "/out/a.mp3", "out/b.mp3", "a.mp3", "out/"]), text)
md5s = st.one_of(st.sampled_from([md5(DATA), md5(DATA).upper(), md5(b"other")]),
                 st.text("0123456789abcdefABCDEF", min_size=31, max_size=33), anything)
md5_info = st.fixed_dictionaries({"Md5": md5s, "ObjectName": st.one_of(keys, anything)})
output_file = st.fixed_dictionaries({}, optional={
    "Bucket": either(BUCKET, "other-1250000000"), "Region": either(REGION),
    "ObjectName": st.one_of(keys, st.lists(keys, max_size=3), anything),
    "ObjectPrefix": st.one_of(st.just(""), keys, anything),
    "Md5Info": st.one_of(md5_info, st.lists(md5_info, max_size=3), anything)})
job = st.fixed_dictionaries({"JobId": either("j1", "j2", "j40644e92f8e311ecb90d0b03267ce0e5"),
                             "State": either("Success", "Failed", "Running")}, optional={
    "Code": text, "Message": text, "Tag": either("VoiceSeparate", "Snapshot"),
    "EndTime": either("2022-07-01T10:12:32+0800", "-"),
    "Input": st.fixed_dictionaries({}, optional={"BucketId": either(BUCKET), "Region": either(REGION)}),
    "Operation": st.fixed_dictionaries({}, optional={
        "MediaResult": st.fixed_dictionaries({}, optional={
            "OutputFile": st.one_of(output_file, st.lists(output_file, max_size=2), anything)}),
        "Output": st.fixed_dictionaries({}, optional={"Bucket": either(BUCKET), "Region": either(REGION)}),
        "MediaInfo": anything})})
callback = st.fixed_dictionaries({"JobsDetail": st.one_of(job, st.lists(job, max_size=3), anything)},
                                 optional={"EventName": either("TaskFinish", "WorkflowFinish")})


def as_xml(name: str, value: Any) -> str:
    """CI's XML form: a list repeats the element, None is an empty element. Names and text are
    not checked, so some documents are not well-formed XML: that is part of the point."""
    if isinstance(value, list):
        return "".join(as_xml(name, item) for item in value)
    if isinstance(value, dict):
        return f"<{name}>{''.join(as_xml(str(k), v) for k, v in value.items())}</{name}>"
    if value is None:
        return f"<{name}/>"
    escaped = str(value).replace("&", "&amp;").replace("<", "&lt;")
    return f"<{name}>{escaped}</{name}>"


# --- the targets --------------------------------------------------------------------------------

event_shapes = st.fixed_dictionaries({"httpMethod": either("POST", "post", "GET", "PUT")}, optional={
    "headers": st.one_of(st.dictionaries(
        st.one_of(st.sampled_from(["X-Callback-Token", "x-callback-token", "Content-Type", "X-Forwarded-For"]), text),
        st.one_of(st.just(CALLBACK_TOKEN), text, anything), max_size=4), anything),
    "queryString": st.one_of(st.dictionaries(st.one_of(st.just("token"), text),
                                             st.one_of(st.just(CALLBACK_TOKEN), st.lists(text, max_size=2), anything),
                                             max_size=3), anything),
    "queryStringParameters": anything,
    "path": st.one_of(st.sampled_from(["/", f"/{CALLBACK_TOKEN}", f"/ci/{CALLBACK_TOKEN}/", "/ci/callback"]), anything),
    "isBase64Encoded": st.one_of(st.booleans(), st.sampled_from(["true", "True", "false"]), anything),
    "requestContext": st.one_of(st.fixed_dictionaries({"sourceIp": anything}), anything),
    "body": st.one_of(st.none(), text, anything, st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
                      callback.map(json.dumps)),
})


@budget("event")
@given(event=event_shapes)
def test_any_event_shape_is_answered(guarded, event):
    app, _ = guarded
    handled(app, event)


raw_bodies = st.one_of(
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    text,
    st.text(max_size=300).map(lambda t: "<Response>" + t),
    st.text(max_size=300).map(lambda t: '{"JobsDetail": ' + t),
    st.tuples(st.integers(1, 5000), st.sampled_from(["<a>", "[", '{"a":'])).map(lambda p: p[1] * p[0]),
)


@budget("body")
@given(body=raw_bodies, token=st.booleans())
def test_any_body_is_answered(guarded, body, token):
    app, emulator = guarded
    status = handled(app, event_with(body, token))
    if not token:
        assert status == 401


@budget("document")
@given(doc=callback, as_json=st.booleans(), verify_with_ci=st.booleans())
def test_any_callback_document_is_answered(guarded, trusting, doc, as_json, verify_with_ci):
    app, _ = guarded if verify_with_ci else trusting
    body = json.dumps(doc, ensure_ascii=False) if as_json else as_xml("Response", doc)
    handled(app, event_with(body))


DOCUMENTED = [restamp((FIXTURES / name).read_text()).replace("3b883c0462ba845acdf3eb7e30db1a1c", md5(DATA))
              .replace("output/audio.mp3", "out/a.mp3")
              for name in ("voice_separate_task.xml", "voice_separate_workflow.xml", "voice_separate_workflow.json")]


@st.composite
def mutated(draw) -> str:
    body = draw(st.sampled_from(DOCUMENTED))
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(body)))
        end = draw(st.integers(start, min(len(body), start + 40)))
        body = body[:start] + draw(st.one_of(text, st.sampled_from(["<", ">", "</", "/>", '"', "{", "}", "[", "]"]),
                                             st.just(body[start:end] * 2))) + body[end:]
    return body


@budget("mutation")
@given(body=mutated(), verify_with_ci=st.booleans())
def test_mutated_documented_callbacks_are_answered(guarded, trusting, body, verify_with_ci):
    app, _ = guarded if verify_with_ci else trusting
    handled(app, event_with(body))
