"""The tolerant reader: strict about what decides a verdict, indifferent to the rest.

Each case is a shape CI itself sends (issue 10): it must be acknowledged, never a 400.
Everything runs through the app against the emulator, CI cross-check on where it matters.
"""
from __future__ import annotations

import pytest
import xmltodict

from handlers.callback import output_objects, parse_callback
from handlers.tags import JOB_TAG, VERIFY_TAG
from localcloud.samples import ci_jobs
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

DATA = b"a transcoded video"
JOB = "j0000000000000000000000000000001"
# ffprobe output as Transcode and QualityEstimate callbacks publish it: a rational Fps, a float Level.
MEDIA_INFO = ("<MediaInfo><Format><Duration>10.0</Duration><Size>-</Size></Format><Stream><Video>"
              "<Fps>50/1</Fps><Level>1.000</Level><Width>1920x</Width><Index>0</Index></Video>"
              "<Audio><Channel>stereo</Channel></Audio></Stream></MediaInfo>")


def register(emulator, body: bytes) -> None:
    for bucket, detail in ci_jobs({"body": body.decode()}):
        emulator.register_job(bucket, detail)


@pytest.mark.parametrize("verify_with_ci", ["false", "true"])
def test_media_info_that_is_not_numbers_does_not_refuse_a_transcode(emulator, make_app, verify_with_ci):
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    body = job_xml(md5s={"out/a.mp4": md5(DATA)}, names=["out/a.mp4"], tag="Transcode", extra_operation=MEDIA_INFO)
    register(emulator, body)
    status, result, _ = invoke(make_app(VERIFY_WITH_CI=verify_with_ci), http_event(body))
    assert status == 200, result
    assert result["jobs"][0]["objects"][0]["verdict"] == "verified"
    assert emulator.tags(BUCKET, "out/a.mp4") == {VERIFY_TAG: "verified", JOB_TAG: JOB}


def test_opaque_nodes_are_kept_as_raw_trees():
    body = job_xml(md5s=None, names=["a"], tag="Transcode", extra_operation=MEDIA_INFO + "<UserData>u</UserData>")
    job = parse_callback(body).jobs_detail[0]
    assert job.operation.media_info["Stream"]["Video"]["Fps"] == "50/1"
    assert job.operation.user_data == "u"
    assert job.raw["Operation"]["MediaInfo"]["Format"]["Size"] == "-"


@pytest.mark.parametrize("junk", [
    "<UserData><Nested>x</Nested></UserData>",  # a node where text was expected, off the deciding path
    "<TemplateName>a</TemplateName><TemplateName>b</TemplateName>",  # a repeated scalar
    "<Unknown><Deep><Deeper>1</Deeper></Deep></Unknown>",
])
def test_surprises_off_the_deciding_path_are_ignored(junk):
    body = job_xml(md5s={"out/a": "0" * 32}, names=[], extra_operation=junk)
    assert [o.key for o in output_objects(parse_callback(body).jobs_detail[0])] == ["out/a"]


def test_a_malformed_deciding_field_is_still_a_400(emulator, app):
    status, result, _ = invoke(app, http_event(job_xml(md5s={"out/a": "xyz"}, names=[])))
    assert status == 400 and "Md5Info[0].Md5" in result["error"] and "not an MD5" in result["error"]
    assert emulator.requests == []


def test_empty_output_bucket_falls_back_to_the_input_bucket(emulator, app):
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    body = job_xml(md5s={"out/a.mp4": md5(DATA)}, names=["out/a.mp4"]).replace(
        f"<Bucket>{BUCKET}</Bucket><Region>{REGION}</Region>".encode(), b"<Bucket/><BucketId/>")
    status, result, _ = invoke(app, http_event(body))
    assert status == 200, result
    (obj,) = result["jobs"][0]["objects"]
    assert (obj["bucket"], obj["region"], obj["verdict"]) == (BUCKET, REGION, "verified")


def test_outputs_no_node_places_are_unverifiable_and_untouched(emulator, app):
    body = job_xml(md5s={"out/a.mp4": md5(DATA)}, names=[]).replace(
        f"<Bucket>{BUCKET}</Bucket><Region>{REGION}</Region>".encode(), b"<Bucket/>").replace(
        f"<BucketId>{BUCKET}</BucketId>".encode(), b"<BucketId/>")
    status, result, _ = invoke(app, http_event(body))
    assert status == 200, result
    (obj,) = result["jobs"][0]["objects"]
    assert obj["verdict"] == "unverifiable" and "bucket" in obj["reason"]
    assert emulator.requests == []


def test_a_job_without_input_is_confirmed_in_its_output_bucket(emulator, make_app):
    """Tts turns text into audio: no Input bucket. CI is asked in the bucket the job wrote to."""
    emulator.put_object(BUCKET, "out/tts.mp3", DATA)
    body = job_xml(md5s={"out/tts.mp3": md5(DATA)}, names=["out/tts.mp3"], tag="Tts").replace(
        f"<Input><BucketId>{BUCKET}</BucketId><Object>input/demo.mp3</Object><Region>{REGION}</Region></Input>"
        .encode(), b"")
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    status, result, _ = invoke(make_app(VERIFY_WITH_CI="true"), http_event(body))
    assert status == 200, result
    assert result["jobs"][0]["objects"][0]["verdict"] == "verified"
    first = emulator.requests[0]
    assert (first.service, first.bucket) == ("ci", BUCKET)


@pytest.mark.parametrize("order", ["names-first", "md5-first"])
def test_two_entries_for_one_output_merge_whatever_their_order(emulator, app, order):
    """Issue 11 item 8: a missing MD5 never conflicts with a present one."""
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    named = f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><ObjectName>out/a.mp4</ObjectName></OutputFile>"
    hashed = (f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><Md5Info><Md5>{md5(DATA)}</Md5>"
              "<ObjectName>out/a.mp4</ObjectName></Md5Info></OutputFile>")
    entries = named + hashed if order == "names-first" else hashed + named
    body = job_xml(md5s=None, names=[]).decode()
    start, end = body.index("<MediaResult>") + len("<MediaResult>"), body.index("</MediaResult>")
    body = body[:start] + entries + body[end:]
    status, result, _ = invoke(app, http_event(body))
    assert status == 200, result
    (obj,) = result["jobs"][0]["objects"]
    assert (obj["key"], obj["expectedMd5"], obj["verdict"]) == ("out/a.mp4", md5(DATA), "verified")


# --- WorkflowFinish without a bucket ---------------------------------------------------------

def _workflow_without_bucket(job_ids: list[str]) -> bytes:
    tasks = "".join(f"<Tasks><Type>Transcode</Type><State>Success</State><JobId>{j}</JobId></Tasks>" for j in job_ids)
    return ("<Response><EventName>WorkflowFinish</EventName><WorkflowExecution><WorkflowId>w1</WorkflowId>"
            "<RunId>i1</RunId><State>Success</State><BucketId/><Object>in.mp4</Object>"
            f"<CreateTime>2026-11-23 10:00:00+0800</CreateTime>{tasks}</WorkflowExecution></Response>").encode()


def test_a_workflow_without_bucket_is_looked_up_in_the_allowed_buckets(emulator, make_app):
    emulator.create_bucket("other-1250000000", region=REGION)
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    job = job_xml(md5s={"out/a.mp4": md5(DATA)}, names=["out/a.mp4"], tag="Transcode", extra_operation=MEDIA_INFO)
    register(emulator, job)
    app = make_app(DEFAULT_REGION=REGION, ALLOWED_BUCKETS=f"other-1250000000,{BUCKET}")
    status, result, _ = invoke(app, http_event(_workflow_without_bucket([JOB])))
    assert status == 200, result
    assert [(j["jobId"], j["outcome"]) for j in result["jobs"]] == [(JOB, "verified")]
    asked = [r.bucket for r in emulator.requests if r.service == "ci"]
    assert asked[-1] == BUCKET and set(asked) <= {"other-1250000000", BUCKET}  # stops where CI knows it


def test_a_workflow_without_bucket_and_any_bucket_allowed_is_left_to_the_sweep(emulator, make_app, log_lines):
    app = make_app(DEFAULT_REGION=REGION, ALLOWED_BUCKETS="*")
    status, result, _ = invoke(app, http_event(_workflow_without_bucket([JOB])))
    assert (status, result["jobs"]) == (200, [])
    assert emulator.requests == []
    assert any('"WARNING"' in line and "names no bucket" in line for line in log_lines)
