"""The tolerant reader: strict about what decides a verdict, indifferent to the rest.

Each case is a shape CI itself sends (issue 10): it must be acknowledged, never a 400.
Everything runs through the app against the emulator, CI cross-check on where it matters.
"""
from __future__ import annotations

import json

import pytest
import xmltodict

from handlers.intake.callback import all_outputs, output_objects, parse_callback
from handlers.intake.nodes import MalformedCallback
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.samples import ci_jobs
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, FIXTURES, REGION, job_xml

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


@pytest.mark.parametrize("fmt", ["xml", "json"])
@pytest.mark.parametrize("order", ["empty-first", "md5-first"])
def test_an_empty_md5_beside_the_real_one_is_a_gap_not_a_conflict(emulator, app, order, fmt):
    """An Md5Info whose Md5 is empty (<Md5/>, "Md5": "") names the object and gives no MD5:
    merged with the entry that has it, in either order and either format, not a 400."""
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    empty = (f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><Md5Info><Md5/>"
             "<ObjectName>out/a.mp4</ObjectName></Md5Info></OutputFile>")
    hashed = (f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><Md5Info><Md5>{md5(DATA)}</Md5>"
              "<ObjectName>out/a.mp4</ObjectName></Md5Info></OutputFile>")
    body = job_xml(md5s=None, names=[]).decode()
    start, end = body.index("<MediaResult>") + len("<MediaResult>"), body.index("</MediaResult>")
    body = body[:start] + (empty + hashed if order == "empty-first" else hashed + empty) + body[end:]
    if fmt == "json":
        body = json.dumps(xmltodict.parse(body)["Response"])
        assert '"Md5": null' in body  # xmltodict reads <Md5/> as null; CI's JSON sends ""
        body = body.replace('"Md5": null', '"Md5": ""')
    status, result, _ = invoke(app, http_event(body))
    assert status == 200, result
    (obj,) = result["jobs"][0]["objects"]
    assert (obj["key"], obj["expectedMd5"], obj["verdict"]) == ("out/a.mp4", md5(DATA), "verified")
    assert emulator.tags(BUCKET, "out/a.mp4") == {VERIFY_TAG: "verified", JOB_TAG: JOB}


@pytest.mark.parametrize("verify_with_ci", ["false", "true"])
def test_an_output_file_without_region_takes_the_region_of_its_bucket_from_the_input(emulator, make_app,
                                                                                     verify_with_ci):
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    body = job_xml(md5s={"out/a.mp4": md5(DATA)}, names=["out/a.mp4"]).replace(
        f"<Bucket>{BUCKET}</Bucket><Region>{REGION}</Region>".encode(), f"<Bucket>{BUCKET}</Bucket>".encode())
    register(emulator, body)
    status, result, _ = invoke(make_app(VERIFY_WITH_CI=verify_with_ci), http_event(body))
    assert status == 200, result
    (obj,) = result["jobs"][0]["objects"]
    assert (obj["bucket"], obj["region"], obj["verdict"]) == (BUCKET, REGION, "verified")
    assert emulator.tags(BUCKET, "out/a.mp4") == {VERIFY_TAG: "verified", JOB_TAG: JOB}


@pytest.mark.parametrize("verify_with_ci", ["false", "true"])
def test_times_written_as_a_dash_are_no_time_and_refuse_nothing(emulator, make_app, verify_with_ci):
    """CI writes `-` for a time it has not got (StartTime, EndTime of a job, in its published
    answers): no end time, so no object is judged superseded by it; the verdict stands."""
    emulator.put_object(BUCKET, "out/a.mp4", DATA)
    body = job_xml(md5s={"out/a.mp4": md5(DATA)}, names=["out/a.mp4"], times=("-", "-", "-"))
    register(emulator, body)
    status, result, _ = invoke(make_app(VERIFY_WITH_CI=verify_with_ci), http_event(body))
    assert status == 200, result
    assert result["jobs"][0]["objects"][0]["verdict"] == "verified"
    assert parse_callback(body).jobs_detail[0].end_time is None


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


# --- found by a red-team pass over the tolerant reader -----------------------------------------

OTHER = "other-1250000001"  # not in ALLOWED_BUCKETS
A, B = b"bytes of a", b"bytes of b"


def _cos_buckets(emulator) -> set[str]:
    return {r.bucket for r in emulator.requests if r.service == "cos"}


def _entries(body: bytes, entries: str) -> bytes:
    text = body.decode()
    start, end = text.index("<MediaResult>") + len("<MediaResult>"), text.index("</MediaResult>")
    return (text[:start] + entries + text[end:]).encode()


def _two_bucket_job(second_bucket: str) -> bytes:
    place = f"<Bucket>{second_bucket}</Bucket><Region>{REGION}</Region>" if second_bucket else ""
    body = job_xml(md5s=None, names=[]).replace(
        f"<Input><BucketId>{BUCKET}</BucketId><Object>input/demo.mp3</Object><Region>{REGION}</Region></Input>"
        .encode(), b"")
    return _entries(body, f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><Md5Info><Md5>{md5(A)}"
                          "</Md5><ObjectName>out/a</ObjectName></Md5Info></OutputFile>"
                          f"<OutputFile>{place}<Md5Info><Md5>{md5(B)}</Md5><ObjectName>out/b</ObjectName>"
                          "</Md5Info></OutputFile>")


@pytest.mark.parametrize("actions", ["tag", "tag,move"])
def test_cis_account_is_held_to_the_allow_lists_too(emulator, make_app, actions):
    """A claim that leaves a bucket out must not let CI's account of the job name it for us."""
    emulator.create_bucket(OTHER, region=REGION)
    emulator.put_object(BUCKET, "out/a", A)
    emulator.put_object(OTHER, "out/b", B)
    emulator.register_job(BUCKET, xmltodict.parse(_two_bucket_job(OTHER))["Response"]["JobsDetail"])
    app = make_app(VERIFY_WITH_CI="true", ACTION_VERIFIED=actions)
    status, result, _ = invoke(app, http_event(_two_bucket_job("")))
    assert status == 403 and OTHER in result["error"], result
    assert OTHER not in _cos_buckets(emulator) and [r for r in emulator.requests if r.is_write] == []


def test_a_placed_entry_wins_over_an_unplaced_one_whatever_the_order():
    placed = (f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><Md5Info><Md5>{md5(A)}</Md5>"
              "<ObjectName>out/a</ObjectName></Md5Info></OutputFile>")
    unplaced = placed.replace(f"<Region>{REGION}</Region>", "")
    body = job_xml(md5s=None, names=[]).replace(f"<Region>{REGION}</Region></Input>".encode(), b"</Input>")
    for entries in (placed + unplaced, unplaced + placed):
        (target,) = all_outputs(parse_callback(_entries(body, entries)).jobs_detail[0])
        assert (target.bucket, target.region, target.expected_md5) == (BUCKET, REGION, md5(A))


def test_two_md5s_for_one_key_conflict_even_when_one_entry_is_unplaced():
    body = job_xml(md5s=None, names=[]).replace(f"<Region>{REGION}</Region></Input>".encode(), b"</Input>")
    entries = (f"<OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region><Md5Info><Md5>{md5(A)}</Md5>"
               "<ObjectName>out/a</ObjectName></Md5Info></OutputFile>"
               f"<OutputFile><Bucket>{BUCKET}</Bucket><Md5Info><Md5>{md5(B)}</Md5>"
               "<ObjectName>out/a</ObjectName></Md5Info></OutputFile>")
    with pytest.raises(MalformedCallback, match="two different MD5s"):
        parse_callback(_entries(body, entries))


def _checks(log_lines) -> int:
    return sum('"object checked"' in line for line in log_lines)


def test_a_workflow_naming_one_job_many_times_processes_it_once(emulator, make_app, log_lines):
    emulator.put_object(BUCKET, "out/a", A)
    register(emulator, job_xml(md5s={"out/a": md5(A)}, names=["out/a"], tag="Transcode"))
    tasks = "".join(f"<Tasks><Type>Transcode</Type><State>Success</State><JobId>{JOB}</JobId></Tasks>"
                    for _ in range(50))
    body = ("<Response><EventName>WorkflowFinish</EventName><WorkflowExecution><WorkflowId>w1</WorkflowId>"
            f"<RunId>i1</RunId><State>Success</State><BucketId>{BUCKET}</BucketId>{tasks}</WorkflowExecution>"
            "</Response>")
    status, result, _ = invoke(make_app(DEFAULT_REGION=REGION), http_event(body))
    assert status == 200 and [j["jobId"] for j in result["jobs"]] == [JOB]
    assert _checks(log_lines) == 1  # 50 before: one check per task, all at once on one object


def test_a_job_repeated_in_jobs_detail_is_processed_once(emulator, app, log_lines):
    emulator.put_object(BUCKET, "out/a", A)
    one = job_xml(md5s={"out/a": md5(A)}, names=["out/a"]).decode()
    detail = one[one.index("<JobsDetail>"):one.index("</JobsDetail>") + len("</JobsDetail>")]
    status, result, _ = invoke(app, http_event(one.replace(detail, detail * 5)))
    assert status == 200 and [j["jobId"] for j in result["jobs"]] == [JOB]
    assert _checks(log_lines) == 1


def test_one_job_id_with_two_different_accounts_is_malformed():
    one = job_xml(md5s={"out/a": md5(A)}, names=["out/a"]).decode()
    detail = one[one.index("<JobsDetail>"):one.index("</JobsDetail>") + len("</JobsDetail>")]
    with pytest.raises(MalformedCallback, match="twice"):
        parse_callback(one.replace(detail, detail + detail.replace(md5(A), md5(B))).encode())


@pytest.mark.parametrize("element", ['<Code a="1"/>', '<Message a="1"/>'])
def test_an_element_with_only_attributes_reads_as_empty(element):
    name = element[1:element.index(" ")]
    body = job_xml(md5s=None, names=["out/a"]).replace(f"<{name}>".encode(), b"<Zz>", 1)
    body = body.replace(f"</{name}>".encode(), b"</Zz>" + element.encode(), 1)
    assert parse_callback(body).jobs_detail[0].job_id == JOB


def test_comparing_with_cis_account_is_linear_in_the_outputs():
    """5,000 outputs: the pairwise comparison took 3.5 s; by key it is milliseconds."""
    import time

    from handlers.ci.confirm import disagreement
    names = [f"out/{i}.jpg" for i in range(5000)]
    job = parse_callback(job_xml(md5s=None, names=names, tag="Snapshot")).jobs_detail[0]
    started = time.perf_counter()
    assert disagreement(job, job) is None
    assert time.perf_counter() - started < 1.0


def test_the_sample_tools_register_a_job_without_input_where_the_function_asks():
    """localcloud.samples.ci_jobs raised KeyError('Input') on a Tts callback."""
    body = (FIXTURES / "ci" / "taskfinish-tts-1.xml").read_text()
    ((bucket, detail),) = ci_jobs({"body": body})
    assert bucket == "test-123456789" and detail["Tag"] == "Tts"
