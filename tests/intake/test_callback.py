"""Parsing: the documented examples, every XML/JSON shape quirk, and every malformed form."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from handlers.intake.callback import body_format, output_objects, parse_callback
from handlers.intake.models import OutputObject
from handlers.intake.nodes import MalformedCallback
from tests.samples import FIXTURES, job_xml

CHINA = timezone(timedelta(hours=8))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- the three documented cases ---------------------------------------------------------

def test_task_callback_keeps_every_documented_node():
    callback = parse_callback(fixture("voice_separate_task.xml"))
    assert callback.event_name == "TaskFinish"
    (job,) = callback.jobs_detail
    assert (job.job_id, job.state, job.code, job.message, job.tag) == (
        "j40644e92f8e311ecb90d0b03267ce0e5", "Success", "Success", "", "VoiceSeparate")
    assert job.queue_id == "p2242ab62c7c94486915508540933a2c6"
    assert job.creation_time == datetime(2022, 7, 1, 10, 12, 26, tzinfo=CHINA)
    assert job.start_time == datetime(2022, 7, 1, 10, 12, 27, tzinfo=CHINA)
    assert job.end_time == datetime(2022, 7, 1, 10, 12, 32, tzinfo=CHINA)
    assert (job.input.bucket_id, job.input.object, job.input.region) == (
        "test-123456789", "input/demo.mp3", "ap-chongqing")
    assert job.input.cos_headers == ()
    op = job.operation
    # MediaInfo decides nothing: it is kept as CI's tree, unvalidated (tests/intake/test_tolerant_reader.py).
    assert op.media_info["Format"]["Size"] == "219263"
    assert op.media_info["Format"]["FormatLongName"] == "MP2/3 (MPEG audio layer 2/3)"
    audio = op.media_info["Stream"]["Audio"][0]
    assert (audio["Channel"], audio["SampleRate"], audio["CodecTimeBase"], audio["SampleFmt"]) == (
        "2", "44100", "1/14112000", "fltp")
    assert job.raw["Operation"]["MediaInfo"] is op.media_info
    out = op.media_result.output_file[0]
    assert (out.bucket, out.region, out.object_prefix) == ("test-123456789", "ap-chongqing", "")
    assert out.object_name == ("output/audio.mp3", "output/backgroud.mp3")
    assert [(m.object_name, m.md5) for m in out.md5_info] == [
        ("output/audio.mp3", "3b883c0462ba845acdf3eb7e30db1a1c"),
        ("output/backgroud.mp3", "62de6bb513d6105eeeb1a6ab0077cb5a")]
    assert (op.output.au_object, op.output.object) == ("output/audio.mp3", "output/backgroud.mp3")
    assert (op.user_data, op.template_id, op.template_name) == (
        "This is my VoiceSeparate job.", "t1f6ac18da8bdc403fa27ac4ffnd7a6sa1", "videoseparate_12654")
    assert job.workflow is None


def test_workflow_callback_has_cos_headers_and_workflow():
    (job,) = parse_callback(fixture("voice_separate_workflow.xml")).jobs_detail
    assert [(h.key, h.value) for h in job.input.cos_headers] == [
        ("Content-Type", "video/mp3"), ("x-cos-request-id", "NjJiZDYwYTFfNjUzYTYyNjRfZjEwZl8xMmZhYzY5"),
        ("EventName", "cos:ObjectCreated:Put"), ("Size", "1326515")]
    wf = job.workflow
    assert (wf.run_id, wf.workflow_id, wf.workflow_name, wf.name) == (
        "ic90edd59f84f11ec9d4f525400a3c59f", "web6ac56c1ef54dbfa44d7f4103203be9",
        "workflow-test", "VoiceSeparate_1581665960537")


def test_xml_and_json_forms_of_the_same_callback_are_equal():
    assert parse_callback(fixture("voice_separate_workflow.xml")) == \
        parse_callback(fixture("voice_separate_workflow.json"))


def test_documented_case_lists_both_tracks_with_their_md5():
    (job,) = parse_callback(fixture("voice_separate_task.xml")).jobs_detail
    assert output_objects(job) == (
        OutputObject("test-123456789", "ap-chongqing", "output/audio.mp3", "3b883c0462ba845acdf3eb7e30db1a1c"),
        OutputObject("test-123456789", "ap-chongqing", "output/backgroud.mp3", "62de6bb513d6105eeeb1a6ab0077cb5a"))


# --- shape quirks ------------------------------------------------------------------------

def test_single_nodes_become_one_element_lists():
    body = job_xml(md5s={"output/a.mp3": "3B883C0462BA845ACDF3EB7E30DB1A1C"}, names=["/output/a.mp3"],
                   extra_operation="<MediaInfo><Stream><Audio><Channel>1</Channel></Audio></Stream></MediaInfo>")
    (job,) = parse_callback(body).jobs_detail
    out = job.operation.media_result.output_file[0]
    assert out.object_name == ("output/a.mp3",)
    assert out.md5_info[0].md5 == "3b883c0462ba845acdf3eb7e30db1a1c"  # case-insensitive, normalised
    assert job.operation.media_info["Stream"]["Audio"]["Channel"] == "1"


def test_json_jobs_detail_may_be_an_object_and_scalars_are_strings():
    doc = json.loads(fixture("voice_separate_workflow.json"))
    doc["JobsDetail"] = doc["JobsDetail"][0]
    doc["JobsDetail"]["Operation"]["MediaResult"]["OutputFile"]["Md5Info"] = \
        doc["JobsDetail"]["Operation"]["MediaResult"]["OutputFile"]["Md5Info"][0]
    callback = parse_callback(json.dumps(doc).encode())
    (job,) = callback.jobs_detail
    assert job.operation.media_info["Format"]["NumProgram"] == "0"
    assert len(job.operation.media_result.output_file[0].md5_info) == 1


def test_json_wrapped_in_response_is_accepted():
    doc = json.loads(fixture("voice_separate_workflow.json"))
    assert parse_callback(json.dumps({"Response": doc}).encode()) == \
        parse_callback(fixture("voice_separate_workflow.json"))


def test_leading_slash_names_the_same_key():
    body = job_xml(md5s={"/output/a.mp3": "0" * 32}, names=["/output/a.mp3"])
    (job,) = parse_callback(body).jobs_detail
    assert [o.key for o in output_objects(job)] == ["output/a.mp3"]


def test_object_names_resolve_against_object_prefix():
    body = job_xml(md5s={"output/segment-0": "1" * 32}, names=["0", "1", "2"], prefix="output/segment-",
                   tag="Segment")
    (job,) = parse_callback(body).jobs_detail
    objects = output_objects(job)
    assert [(o.key, o.expected_md5) for o in objects] == [
        ("output/segment-0", "1" * 32), ("output/segment-1", None), ("output/segment-2", None)]


def test_snapshot_with_empty_md5_info_lists_unverifiable_objects():
    body = job_xml(md5s=None, names=["0.jpg", "1.jpg"], prefix="snap/", tag="Snapshot", empty_md5_info=True)
    (job,) = parse_callback(body).jobs_detail
    assert [(o.key, o.expected_md5) for o in output_objects(job)] == [("snap/0.jpg", None), ("snap/1.jpg", None)]


def test_analysis_job_without_media_result_has_no_outputs():
    body = b"""<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>j1</JobId><State>Success</State>
      <Tag>VideoTag</Tag><Operation><VideoTagResult><StreamData><Data><Tags><Tag>office</Tag>
      <Confidence>80</Confidence></Tags></Data></StreamData></VideoTagResult></Operation></JobsDetail></Response>"""
    (job,) = parse_callback(body).jobs_detail
    assert job.tag == "VideoTag"  # the nested <Tag> is not the job's
    assert output_objects(job) == ()


def test_nested_namesakes_do_not_leak_into_job_fields():
    body = job_xml(md5s={"o/a": "2" * 32}, names=["o/a"],
                   extra_operation="<DigitalWatermark><State>Failed</State><Message>x</Message></DigitalWatermark>")
    (job,) = parse_callback(body).jobs_detail
    assert job.state == "Success" and job.message == ""


def test_times_with_a_space_or_a_dash_and_a_missing_event_name():
    body = job_xml(md5s={"o/a": "2" * 32}, names=["o/a"], event_name=None,
                   times=("2022-07-01 10:12:26+0800", "-", "2022-07-01T10:12:32+08:00"))
    callback = parse_callback(body)
    (job,) = callback.jobs_detail
    assert callback.event_name == ""
    assert job.creation_time == datetime(2022, 7, 1, 10, 12, 26, tzinfo=CHINA)
    assert job.start_time is None
    assert job.end_time == datetime(2022, 7, 1, 2, 12, 32, tzinfo=timezone.utc)


def test_several_jobs_in_one_callback():
    body = fixture("voice_separate_task.xml").replace(b"</JobsDetail>", b"</JobsDetail>" + b"""
      <JobsDetail><JobId>j2</JobId><State>Failed</State><Code>InternalError</Code></JobsDetail>""", 1)
    jobs = parse_callback(body).jobs_detail
    assert [(j.job_id, j.succeeded) for j in jobs] == [("j40644e92f8e311ecb90d0b03267ce0e5", True), ("j2", False)]


def test_body_format_is_decided_by_content():
    assert body_format(b"  \n<Response/>") == "xml"
    assert body_format(b"\xef\xbb\xbf{}") == "json"


# --- malformed callbacks ----------------------------------------------------------------

@pytest.mark.parametrize("body, reason", [
    (b"", "empty"),
    (b"EventName=TaskFinish", "neither XML nor JSON"),
    (b"<Response><JobsDetail>", "not well-formed XML"),
    (b"<Other/>", "root element is <Other>"),
    (b"{\"EventName\": ", "not valid JSON"),
    (b"[1, 2]", "must be an object"),
    (b"<Response>\xff\xfe</Response>", "not valid UTF-8"),
    (b"<Response><EventName>TaskFinish</EventName></Response>", "JobsDetail is missing"),
    (b"<Response><JobsDetail><State>Success</State></JobsDetail></Response>", "JobId is required"),
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><Response/>', "DOCTYPE"),
    (b"<Response><JobsDetail><JobId>j</JobId><State>Success</State><Input>text</Input></JobsDetail></Response>",
     "Input: expected an element with children"),
    (b"<Response><JobsDetail><JobId>j</JobId><JobId>k</JobId><State>Success</State></JobsDetail></Response>",
     "expected one value"),
    (b'{"JobsDetail": [{"JobId": {"a": 1}, "State": "Success"}]}', "JobId: expected text"),
])
def test_malformed_bodies_say_why(body, reason):
    with pytest.raises(MalformedCallback, match=reason.replace("(", r"\(")):
        parse_callback(body)


@pytest.mark.parametrize("md5s, names, reason", [
    ({"o/a": "xyz"}, ["o/a"], "is not an MD5"),
    ({"o/a": "a" * 31}, ["o/a"], "is not an MD5"),
    ({"o/../etc": "a" * 32}, [], "'..' segment"),
    ({"o/a\tb": "a" * 32}, [], "control characters"),
    ({"/": "a" * 32}, [], "names no object"),
])
def test_bad_md5_info_is_malformed(md5s, names, reason):
    with pytest.raises(MalformedCallback, match=reason):
        parse_callback(job_xml(md5s=md5s, names=names))


def test_a_wrong_scalar_decides_only_where_it_decides():
    tolerated = fixture("voice_separate_task.xml").replace(b"<Size>219263</Size>", b"<Size>big</Size>")
    assert parse_callback(tolerated).jobs_detail[0].operation.media_info["Format"]["Size"] == "big"
    refused = fixture("voice_separate_task.xml").replace(b"<EndTime>2022-07-01T10:12:32+0800</EndTime>",
                                                          b"<EndTime>big</EndTime>")
    with pytest.raises(MalformedCallback, match=r"JobsDetail\[0\]\.EndTime: 'big' is not a time"):
        parse_callback(refused)


def test_two_md5s_for_one_key_are_malformed():
    body = job_xml(md5s={"o/a": "a" * 32}, names=[]).replace(
        b"</Md5Info>", b"</Md5Info><Md5Info><Md5>" + b"b" * 32 + b"</Md5><ObjectName>o/a</ObjectName></Md5Info>", 1)
    with pytest.raises(MalformedCallback, match="two different MD5s"):
        parse_callback(body)
