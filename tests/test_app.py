"""End to end: an HTTP event through the function, the real COS SDK, and the emulator."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.samples import restamp
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, FIXTURES, job_xml

VOICE = b"voice track bytes " * 4096
BACKGROUND = b"background track bytes " * 5000
JOB = "j0000000000000000000000000000001"
DOC_JOB = "j40644e92f8e311ecb90d0b03267ce0e5"
DOC_MD5 = {"output/audio.mp3": "3b883c0462ba845acdf3eb7e30db1a1c",
           "output/backgroud.mp3": "62de6bb513d6105eeeb1a6ab0077cb5a"}


def upload_documented_outputs(emulator) -> None:
    emulator.put_object(BUCKET, "output/audio.mp3", VOICE)
    emulator.put_object(BUCKET, "output/backgroud.mp3", BACKGROUND)


def documented_body(name: str) -> str:
    text = restamp((FIXTURES / name).read_text())
    ours = {"output/audio.mp3": md5(VOICE), "output/backgroud.mp3": md5(BACKGROUND)}
    for key, doc_md5 in DOC_MD5.items():
        text = text.replace(doc_md5, ours[key])
    return text


def requests_of(emulator, method: str, query: str | None = None) -> list:
    return [r for r in emulator.requests if r.method == method and (query is None or query in r.query)]


def writes(emulator) -> list:
    return [r for r in emulator.requests if r.is_write]


def only_object(body: dict) -> dict:
    (job,) = body["jobs"]
    (obj,) = job["objects"]
    return obj


# --- the documented cases ---------------------------------------------------------------

@pytest.mark.parametrize("fixture, content_type", [
    ("voice_separate_task.xml", "application/xml"),
    ("voice_separate_workflow.xml", "text/xml"),
    ("voice_separate_workflow.json", "application/json"),
])
def test_documented_callback_verifies_and_tags_both_tracks(emulator, app, fixture, content_type):
    upload_documented_outputs(emulator)
    status, body, _ = invoke(app, http_event(documented_body(fixture), content_type))
    assert status == 200
    (job,) = body["jobs"]
    assert (job["jobId"], job["tag"], job["state"], job["outcome"]) == (DOC_JOB, "VoiceSeparate", "Success", "verified")
    assert [(o["key"], o["verdict"], o["method"], o["actions"]) for o in job["objects"]] == [
        ("output/audio.mp3", "verified", "etag", ["tagged"]),
        ("output/backgroud.mp3", "verified", "etag", ["tagged"])]
    assert job["objects"][0] == {"bucket": BUCKET, "region": "ap-chongqing", "key": "output/audio.mp3",
                                 "expectedMd5": md5(VOICE), "verdict": "verified", "method": "etag",
                                 "actions": ["tagged"], "etag": md5(VOICE)}  # a single PUT: the ETag is the MD5
    for key in ("output/audio.mp3", "output/backgroud.mp3"):
        assert emulator.tags(BUCKET, key) == {VERIFY_TAG: "verified", JOB_TAG: DOC_JOB}
    # Nothing read whole: HEAD + tag read, then the tag write, then a HEAD that proves the tags
    # landed on the version checked and a tag read that catches a concurrent writer (COS has
    # no conditional tagging).
    assert len(requests_of(emulator, "HEAD")) == 4
    assert len(requests_of(emulator, "GET", "tagging")) == 4
    assert len(requests_of(emulator, "PUT", "tagging")) == 2
    assert len(emulator.requests) == 10


def test_content_type_does_not_decide_the_format(emulator, app):
    upload_documented_outputs(emulator)
    status, body, _ = invoke(app, http_event(documented_body("voice_separate_workflow.json"), "application/xml"))
    assert status == 200 and body["jobs"][0]["outcome"] == "verified"


def test_api_gateway_event_with_base64_body(emulator, app):
    upload_documented_outputs(emulator)
    body = documented_body("voice_separate_task.xml").encode()
    event = {"requestContext": {"httpMethod": "POST", "sourceIp": "10.0.0.2", "stage": "release"},
             "httpMethod": "POST", "path": "/callback", "headers": {"content-type": "application/xml"},
             "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
             "queryStringParameters": {}, "queryString": {}}
    status, result, _ = invoke(app, event)
    assert status == 200 and result["jobs"][0]["outcome"] == "verified"


# --- every verdict and method -----------------------------------------------------------

def test_wrong_md5_is_a_mismatch_proven_by_the_content(emulator, app):
    emulator.put_object(BUCKET, "out/a.mp3", b"the bytes CI wrote")
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(b"other bytes")}, names=["out/a.mp3"])))
    assert status == 200
    obj = only_object(body)
    assert (obj["verdict"], obj["method"], obj["actions"]) == ("mismatch", "content", ["tagged"])
    assert md5(b"the bytes CI wrote") in obj["reason"]
    assert body["jobs"][0]["outcome"] == "failed"
    # The content read, and the tag reads: beside the HEAD, again after the hash, after the write.
    assert len(requests_of(emulator, "GET", None)) == 4
    assert emulator.tags(BUCKET, "out/a.mp3") == {VERIFY_TAG: "mismatch", JOB_TAG: JOB}


def test_multipart_object_is_verified_by_content(emulator, app):
    data = bytes(range(256)) * 12 * 1024  # 3 MiB, three 1 MiB parts
    etag = emulator.put_object(BUCKET, "out/big.wav", data, part_size=1 << 20)
    assert etag.endswith("-3")
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/big.wav": md5(data)}, names=["out/big.wav"])))
    obj = only_object(body)
    assert status == 200 and (obj["verdict"], obj["method"]) == ("verified", "content")
    content_reads = [r for r in requests_of(emulator, "GET") if "tagging" not in r.query]
    assert len(content_reads) == 1 and content_reads[0].headers.get("if-match") == f'"{etag}"'


def test_full_mode_reads_the_content_even_when_the_etag_matches(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", b"abc")
    app = make_app(VERIFY_MODE="full")
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a": md5(b"abc")}, names=["out/a"])))
    assert (only_object(body)["verdict"], only_object(body)["method"]) == ("verified", "content")


def test_missing_object_is_reported_and_not_tagged(emulator, app):
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/none": "a" * 32}, names=["out/none"])))
    obj = only_object(body)
    assert status == 200 and (obj["verdict"], obj["method"], obj["actions"]) == ("missing", "none", [])
    assert body["jobs"][0]["outcome"] == "failed"
    assert writes(emulator) == []


def test_missing_bucket_reads_as_missing(emulator, app):
    body = job_xml(md5s={"out/a": "a" * 32}, names=[], bucket="nobucket-1250000000")
    status, result, _ = invoke(app, http_event(body))
    assert status == 200 and only_object(result)["verdict"] == "missing"


def test_object_rewritten_after_the_job_is_superseded_and_left_alone(emulator, app):
    job_end = datetime(2022, 7, 1, 10, 12, 32, tzinfo=timezone(timedelta(hours=8)))
    emulator.put_object(BUCKET, "out/a", b"a later job's bytes", last_modified=(job_end + timedelta(minutes=5)).timestamp())
    times = ("2022-07-01T10:12:26+0800", "2022-07-01T10:12:27+0800", "2022-07-01T10:12:32+0800")
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a": md5(b"this job's bytes")}, names=["out/a"],
                                                     times=times)))
    obj = only_object(body)
    assert status == 200 and (obj["verdict"], obj["method"], obj["actions"]) == ("superseded", "content", [])
    assert writes(emulator) == [] and emulator.tags(BUCKET, "out/a") == {}


def test_listed_object_without_md5_is_unverifiable(emulator, app):
    emulator.put_object(BUCKET, "out/a", b"a")
    emulator.put_object(BUCKET, "out/b", b"b")
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a": md5(b"a")}, names=["out/a", "out/b"])))
    job = body["jobs"][0]
    assert [(o["key"], o["verdict"], o["method"], o["expectedMd5"]) for o in job["objects"]] == [
        ("out/a", "verified", "etag", md5(b"a")), ("out/b", "unverifiable", "none", None)]
    assert job["outcome"] == "verified"
    assert emulator.tags(BUCKET, "out/b") == {VERIFY_TAG: "unverifiable", JOB_TAG: JOB}


def test_jobs_without_checksums_are_acknowledged(emulator, app):
    emulator.put_object(BUCKET, "snap/0.jpg", b"jpg")
    body = job_xml(md5s=None, names=["0.jpg"], prefix="snap/", tag="Snapshot", empty_md5_info=True)
    status, result, _ = invoke(app, http_event(body))
    assert status == 200
    assert result["jobs"][0]["outcome"] == "skipped"
    assert only_object(result)["verdict"] == "unverifiable"


def test_analysis_job_without_outputs_is_skipped_with_no_requests(emulator, app):
    body = b"""<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>j1</JobId><State>Success</State>
      <Tag>VideoTag</Tag><Operation><VideoTagResult/></Operation></JobsDetail></Response>"""
    status, result, _ = invoke(app, http_event(body))
    assert status == 200 and result["jobs"] == [
        {"jobId": "j1", "tag": "VideoTag", "state": "Success", "outcome": "skipped", "objects": []}]
    assert emulator.requests == []


def test_failed_job_touches_nothing(emulator, app):
    emulator.put_object(BUCKET, "out/a", b"a")
    body = job_xml(md5s={"out/a": "a" * 32}, names=["out/a"], state="Failed", code="InvalidInput",
                   message="The input file has no audio stream.")
    status, result, _ = invoke(app, http_event(body))
    assert status == 200
    assert result["jobs"][0] == {"jobId": JOB, "tag": "VoiceSeparate", "state": "Failed", "outcome": "failed-job",
                                 "code": "InvalidInput", "message": "The input file has no audio stream.",
                                 "objects": []}
    assert emulator.requests == []


# --- tags -------------------------------------------------------------------------------

def test_users_tags_are_kept(emulator, app):
    emulator.put_object(BUCKET, "out/a", b"a")
    emulator.set_tags(BUCKET, "out/a", {"team": "audio", "ci-verify": "mismatch"})
    invoke(app, http_event(job_xml(md5s={"out/a": md5(b"a")}, names=["out/a"])))
    assert emulator.tags(BUCKET, "out/a") == {"team": "audio", VERIFY_TAG: "verified", JOB_TAG: JOB}


def test_tag_limit_keeps_the_users_tags_and_says_so(emulator, app, capsys):
    emulator.put_object(BUCKET, "out/a", b"a")
    users = {f"user{i}": "v" for i in range(9)}
    emulator.set_tags(BUCKET, "out/a", users)
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a": md5(b"a")}, names=["out/a"])))
    obj = only_object(body)
    assert status == 200 and obj["verdict"] == "verified" and obj["actions"] == ["tag-skipped"]
    assert "9 tags of its own" in obj["reason"]
    assert emulator.tags(BUCKET, "out/a") == users
    assert requests_of(emulator, "PUT", "tagging") == []
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(e.get("key") == "out/a" and "9 tags of its own" in (e.get("reason") or "") for e in logged)


def test_replaying_a_callback_writes_nothing_more(emulator, app):
    emulator.put_object(BUCKET, "out/a", b"a")
    event = http_event(job_xml(md5s={"out/a": md5(b"a")}, names=["out/a"]))
    first = invoke(app, event)
    emulator.clear_requests()
    second = invoke(app, event)
    assert first[:2] == second[:2]
    assert writes(emulator) == []


def test_action_none_reads_and_writes_no_tags(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", b"a")
    app = make_app(ACTION_VERIFIED="none", ACTION_FAILED="none")
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a": md5(b"a")}, names=["out/a"])))
    assert status == 200 and only_object(body)["actions"] == []
    assert [r.method for r in emulator.requests] == ["HEAD"]


def test_failed_action_applies_to_mismatches_only(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", b"a")
    emulator.put_object(BUCKET, "out/b", b"b")
    app = make_app(ACTION_VERIFIED="none", ACTION_FAILED="tag")
    invoke(app, http_event(job_xml(md5s={"out/a": md5(b"a"), "out/b": md5(b"not b")}, names=[])))
    assert emulator.tags(BUCKET, "out/a") == {}
    assert emulator.tags(BUCKET, "out/b") == {VERIFY_TAG: "mismatch", JOB_TAG: JOB}
