"""VERIFY_WITH_CI: a claimed success is read back from CI's job API before storage is touched.

Everything goes through the real SDK (`ci_get_media_jobs`, whose xml_to_dict shapes nodes
unlike xmltodict) against the emulator's CI API.
"""
from __future__ import annotations

import json
import time

import pytest

from handlers.ci.confirm import CiAnswer, disagreement
from handlers.ci.jobs import answer_from
from handlers.intake.callback import parse_callback
from handlers.intake.nodes import MalformedCallback
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.samples import ci_jobs
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, job_xml

JOB = "j0000000000000000000000000000001"
DATA = b"the bytes CI wrote"


@pytest.fixture
def app(make_app):
    return make_app(VERIFY_WITH_CI="true")


def register(emulator, body: bytes) -> None:
    """Make CI's job API know the jobs of `body`, exactly as described there."""
    for bucket, detail in ci_jobs({"body": body.decode()}):
        emulator.register_job(bucket, detail)


def ci_requests(emulator) -> list:
    return [r for r in emulator.requests if r.service == "ci"]


def cos_requests(emulator) -> list:
    return [r for r in emulator.requests if r.service == "cos"]


def one_output(md5s: dict | None = None, **kwargs) -> bytes:
    return job_xml(md5s={"out/a.mp3": md5(DATA)} if md5s is None else md5s, names=["out/a.mp3"], **kwargs)


# --- confirmed callbacks go ahead ---------------------------------------------------------

def test_a_job_ci_confirms_is_verified_after_one_look_up(emulator, app):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    body = one_output()
    register(emulator, body)
    status, result, _ = invoke(app, http_event(body))
    assert status == 200 and result["jobs"][0]["outcome"] == "verified"
    assert emulator.tags(BUCKET, "out/a.mp3") == {VERIFY_TAG: "verified", JOB_TAG: JOB}
    first, *rest = emulator.requests  # CI first, then storage
    assert (first.service, first.method, first.bucket) == ("ci", "GET", BUCKET) and JOB in first.key
    assert rest and {r.service for r in rest} == {"cos"}


def test_the_job_as_ci_reports_it_is_the_one_processed(emulator, app):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    register(emulator, one_output(tag="Transcode"))
    status, result, _ = invoke(app, http_event(one_output(tag="VoiceSeparate")))
    assert status == 200 and result["jobs"][0]["tag"] == "Transcode"


@pytest.mark.parametrize("body", [
    # One Md5Info and one ObjectName: single nodes, which the SDK leaves as dicts.
    job_xml(md5s={"out/a.mp3": md5(DATA)}, names=["out/a.mp3"]),
    # No Md5Info at all, an empty ObjectPrefix: Snapshot's shape, names relative to the prefix.
    job_xml(md5s=None, names=["a.mp3"], prefix="out/", tag="Snapshot", empty_md5_info=True),
])
def test_sdk_shapes_of_ci_answers_are_read_like_callbacks(emulator, app, body):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    register(emulator, body)
    status, result, _ = invoke(app, http_event(body))
    assert status == 200 and [o["key"] for o in result["jobs"][0]["objects"]] == ["out/a.mp3"]


def test_json_callbacks_are_confirmed_against_ci_too(emulator, app):
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    body = one_output()
    register(emulator, body)
    job = parse_callback(body).jobs_detail[0]
    as_json = {"EventName": "TaskFinish", "JobsDetail": [{
        "JobId": job.job_id, "State": "Success", "Tag": "VoiceSeparate",
        "Input": {"BucketId": BUCKET, "Region": "ap-chongqing", "Object": "input/demo.mp3"},
        "Operation": {"MediaResult": {"OutputFile": {"Bucket": BUCKET, "Region": "ap-chongqing",
                                                     "ObjectName": ["out/a.mp3"],
                                                     "Md5Info": [{"Md5": md5(DATA), "ObjectName": "out/a.mp3"}]}}}}]}
    status, result, _ = invoke(app, http_event(json.dumps(as_json), "application/json"))
    assert status == 200 and result["jobs"][0]["outcome"] == "verified"


# --- jobs that touch nothing are not looked up ----------------------------------------------

@pytest.mark.parametrize("body", [
    one_output(state="Failed", code="InvalidInput", message="no audio stream"),
    b"<Response><JobsDetail><JobId>j1</JobId><State>Success</State><Tag>VideoTag</Tag></JobsDetail></Response>",
])
def test_jobs_that_cause_no_storage_request_are_not_looked_up(emulator, app, body):
    status, _, _ = invoke(app, http_event(body))
    assert status == 200 and emulator.requests == []


# --- forged or stale callbacks: 403 and no storage request ------------------------------------

def refused(emulator, app, body: bytes, status: int = 403) -> str:
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    got, result, headers = invoke(app, http_event(body))
    assert got == status, result
    assert cos_requests(emulator) == [] and [r for r in emulator.requests if r.is_write] == []
    return result["error"]


def test_a_job_unknown_to_ci_is_refused(emulator, app):
    reason = refused(emulator, app, one_output())
    assert reason == f"CI does not confirm the callback: job {JOB} is unknown to CI"
    assert len(ci_requests(emulator)) == 1


@pytest.mark.parametrize("state", ["Running", "Failed", "Cancel"])
def test_a_job_ci_does_not_report_as_success_is_refused(emulator, app, state):
    register(emulator, one_output(state=state))
    assert f"CI reports job {JOB} as {state}, not Success" in refused(emulator, app, one_output())


def test_an_md5_that_differs_from_cis_is_refused(emulator, app):
    register(emulator, one_output())
    reason = refused(emulator, app, one_output(md5s={"out/a.mp3": md5(b"forged")}))
    assert "outputs differ from CI's" in reason and md5(b"forged") in reason


def test_an_output_ci_never_listed_is_refused(emulator, app):
    register(emulator, one_output())
    forged = job_xml(md5s={"out/a.mp3": md5(DATA)}, names=["out/a.mp3", "out/other.mp3"])
    assert "only in the callback: test-123456789/out/other.mp3=no MD5" in refused(emulator, app, forged)


def test_a_job_in_another_bucket_at_ci_is_unknown(emulator, make_app):
    app = make_app(VERIFY_WITH_CI="true", ALLOWED_BUCKETS=f"{BUCKET},other-1250000000")
    emulator.register_job("other-1250000000", ci_jobs({"body": one_output().decode()})[0][1])
    assert "unknown to CI" in refused(emulator, app, one_output())


def test_one_forged_job_among_real_ones_refuses_the_whole_callback(emulator, app):
    real = one_output()
    register(emulator, real)
    forged = job_xml(md5s={"out/b.mp3": md5(DATA)}, names=[], job_id="j0000000000000000000000000000002")
    forged_job = forged[forged.index(b"<JobsDetail>"):forged.rindex(b"</Response>")]
    both = real.replace(b"</Response>", forged_job + b"</Response>")
    assert len(parse_callback(both).jobs_detail) == 2
    reason = refused(emulator, app, both)
    assert "j0000000000000000000000000000002 is unknown to CI" in reason
    (look_up,) = ci_requests(emulator)  # both ids in one request
    assert "j0000000000000000000000000000001,j0000000000000000000000000000002" in look_up.key


def test_a_job_without_an_input_bucket_is_looked_up_where_it_wrote(emulator, app):
    body = one_output().replace(f"<BucketId>{BUCKET}</BucketId>".encode(), b"")
    assert "unknown to CI" in refused(emulator, app, body, status=403)
    assert [(r.service, r.bucket) for r in emulator.requests] == [("ci", BUCKET)]


# --- CI unreachable: 503 + Retry-After, bounded by the deadline ----------------------------

@pytest.mark.slow
def test_ci_failing_ends_in_503_with_retry_after_and_no_storage_request(emulator, app):
    register(emulator, one_output())
    emulator.add_fault(service="ci", status=503, times=None)
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    status, result, headers = invoke(app, http_event(one_output()))
    assert status == 503 and headers["Retry-After"] == "30"
    assert "CI's job API did not answer" in result["error"] and "503" in result["error"]
    assert len(ci_requests(emulator)) == 4 and cos_requests(emulator) == []


def test_ci_failing_once_is_retried(emulator, app):
    register(emulator, one_output())
    emulator.put_object(BUCKET, "out/a.mp3", DATA)
    emulator.add_fault(service="ci", reset=True, times=1)
    status, _, _ = invoke(app, http_event(one_output()))
    assert status == 200 and len(ci_requests(emulator)) == 2


@pytest.mark.slow
def test_ci_retries_stop_within_the_time_budget(emulator, app):
    register(emulator, one_output())
    emulator.add_fault(service="ci", status=500, delay=0.3, times=None)
    started = time.monotonic()
    status, _, _ = invoke(app, http_event(one_output()), {"time_limit_in_ms": 2000})
    assert status == 503 and time.monotonic() - started < 2.0


def test_ci_refusing_the_role_is_503_naming_the_permission(emulator, app):
    register(emulator, one_output())
    emulator.add_fault(service="ci", status=403, code="AccessDenied", times=None)
    status, result, _ = invoke(app, http_event(one_output()))
    assert status == 503 and "ci:DescribeMediaJob" in result["error"]
    assert len(ci_requests(emulator)) == 1  # not worth retrying


# --- the pure parts -------------------------------------------------------------------------

def test_answers_in_every_sdk_shape():
    assert answer_from({"Response": None}) == CiAnswer({}, frozenset())
    assert answer_from({"NonExistJobIds": "j1,j2"}).missing == {"j1", "j2"}
    assert answer_from({"NonExistJobIds": ["j1", "j2"]}).missing == {"j1", "j2"}
    answer = answer_from({"JobsDetail": [{"JobId": "j1", "State": "Success"}]})
    assert list(answer.jobs) == ["j1"]
    with pytest.raises(MalformedCallback):
        answer_from({"JobsDetail": [{"State": "Success"}]})


def test_disagreement_is_none_only_for_the_same_successful_outputs():
    job = parse_callback(one_output()).jobs_detail[0]
    assert disagreement(job, job) is None
    assert "unknown" in disagreement(job, None)
