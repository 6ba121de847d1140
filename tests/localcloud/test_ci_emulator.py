"""CI's queue API and the job list's documented rules, through the real cos-python-sdk-v5 over HTTP."""
from __future__ import annotations

import pytest
from qcloud_cos.cos_exception import CosServiceError

from localcloud.cos.ci import DEFAULT_QUEUE_ID


def job(job_id: str, created: str, queue: str | None = None, state: str = "Success") -> dict:
    detail = {"JobId": job_id, "Tag": "VoiceSeparate", "State": state, "CreationTime": created}
    return {**detail, "QueueId": queue} if queue else detail


def service_error(call, **kwargs) -> CosServiceError:
    with pytest.raises(CosServiceError) as raised:
        call(**kwargs)
    return raised.value


def test_the_job_list_needs_a_queue_id(ci, bucket, emulator):
    emulator.register_job(bucket, job("j1", "2022-07-01T10:00:00+0800"))
    error = service_error(ci.ci_list_media_jobs, Bucket=bucket, Tag="VoiceSeparate")
    assert (error.get_status_code(), error.get_error_code()) == (400, "InvalidArgument")
    assert "queueId" in error.get_error_msg()


def test_jobs_registered_without_a_queue_run_in_the_default_queue(ci, bucket, emulator):
    emulator.register_job(bucket, job("j1", "2022-07-01T10:00:00+0800"))
    emulator.register_job(bucket, job("j2", "2022-07-02T10:00:00+0800", queue="pother"))
    assert ci.ci_get_media_jobs(Bucket=bucket, JobIDs="j1")["JobsDetail"][0]["QueueId"] == DEFAULT_QUEUE_ID

    def listed(queue: str) -> list[str]:
        response = ci.ci_list_media_jobs(Bucket=bucket, Tag="VoiceSeparate", QueueId=queue)
        return [j["JobId"] for j in response.get("JobsDetail", [])]

    assert listed(DEFAULT_QUEUE_ID) == ["j1"] and listed("pother") == ["j2"] and listed("pnone") == []


def test_the_queue_api_lists_the_queues_jobs_name_and_those_declared(ci, bucket, emulator):
    emulator.register_job(bucket, job("j1", "2022-07-01T10:00:00+0800"))
    emulator.register_job(bucket, job("j2", "2022-07-01T10:00:00+0800", queue="pvoice"))
    emulator.declare_queue(bucket, "ppaused", name="night", state="Paused")
    emulator.declare_queue(bucket, "pspeed", category="SpeedTranscoding")
    emulator.declare_queue("other-123456789", "pelsewhere")

    answer = ci.ci_get_media_queue(Bucket=bucket)
    assert (answer["TotalCount"], answer["PageNumber"], answer["PageSize"]) == ("3", "1", "10")
    # The documented default category is Transcoding: the SpeedTranscoding queue is not listed.
    assert [(q["QueueId"], q["State"], q["Category"]) for q in answer["QueueList"]] == [
        (DEFAULT_QUEUE_ID, "Active", "Transcoding"), ("pvoice", "Active", "Transcoding"),
        ("ppaused", "Paused", "Transcoding")]
    assert answer["QueueList"][2]["Name"] == "night"
    assert {"NotifyConfig", "MaxSize", "MaxConcurrent", "CreateTime", "UpdateTime"} <= set(answer["QueueList"][0])

    assert [q["QueueId"] for q in ci.ci_get_media_queue(Bucket=bucket, State="Paused")["QueueList"]] == ["ppaused"]
    only = ci.ci_get_media_queue(Bucket=bucket, QueueIds="pvoice,pnone")
    assert only["TotalCount"] == "1" and [q["QueueId"] for q in only["QueueList"]] == ["pvoice"]
    assert "QueueList" not in ci.ci_get_media_queue(Bucket="empty-123456789")
    request = emulator.requests[-1]
    assert (request.service, request.method, request.key) == ("ci", "GET", "queue")


def test_the_queue_api_pages(ci, bucket, emulator):
    for n in range(5):
        emulator.declare_queue(bucket, f"p{n}")
    pages = [ci.ci_get_media_queue(Bucket=bucket, PageNumber=str(n), PageSize="2") for n in (1, 2, 3, 4)]
    assert [[q["QueueId"] for q in page.get("QueueList", [])] for page in pages] == [
        ["p0", "p1"], ["p2", "p3"], ["p4"], []]
    assert all(page["TotalCount"] == "5" for page in pages)
    error = service_error(ci.ci_get_media_queue, Bucket=bucket, PageSize="101")
    assert (error.get_status_code(), error.get_error_code()) == (400, "InvalidArgument")
    error = service_error(ci.ci_get_media_queue, Bucket=bucket, State="Sleeping")
    assert (error.get_status_code(), error.get_error_code()) == (400, "InvalidArgument")


def test_unknown_job_ids_are_named_in_non_exist_job_ids(ci, bucket, emulator):
    emulator.register_job(bucket, job("j1", "2022-07-01T10:00:00+0800"))
    answer = ci.ci_get_media_jobs(Bucket=bucket, JobIDs="nope1,j1,nope2")
    assert [j["JobId"] for j in answer["JobsDetail"]] == ["j1"]
    assert answer["NonExistJobIds"] == ["nope1", "nope2"]
    assert "NonExistJobIds" not in ci.ci_get_media_jobs(Bucket=bucket, JobIDs="j1")  # all exist: not returned
    request = emulator.requests[-1]
    assert request.key == "jobs/j1"


def test_a_page_of_the_job_list_costs_the_page_not_every_job(ci, bucket, emulator):
    """The list is indexed by queue, tag and creation time (bench/ measures the sweep at 10,000+ jobs):
    a page looks at its own jobs (and one more, to know whether a NextToken is due), whatever the
    bucket holds in other queues, tags or outside the period."""
    for n in range(3000):
        created = f"2022-07-01T10:{n // 60:02d}:{n % 60:02d}+0800"  # one a second from 10:00:00
        emulator.register_job(bucket, job(f"j{n:04d}", created, queue="pbusy" if n % 3 else "pquiet"))
    emulator.register_job(bucket, {**job("jtts", "2022-07-01T10:00:01+0800", queue="pbusy"), "Tag": "Tts"})
    page = ci.ci_list_media_jobs(Bucket=bucket, Tag="VoiceSeparate", QueueId="pbusy", Size=100, OrderByTime="Asc",
                                 StartCreationTime="2022-07-01T10:20:00+0800", EndCreationTime="2022-07-01T10:40:00+0800")
    ids = [j["JobId"] for j in page["JobsDetail"]]
    assert len(ids) == 100 and ids[0] == "j1201" and all(int(i[1:]) % 3 for i in ids)
    assert emulator._jobs.examined == 101


def test_pages_do_not_shift_when_a_job_is_registered_between_them(ci, bucket, emulator):
    for n in range(5):
        emulator.register_job(bucket, job(f"j{n}", f"2022-07-01T10:00:0{n * 2}+0800"))

    def listed(**kwargs) -> tuple[list[str], str]:
        response = ci.ci_list_media_jobs(Bucket=bucket, Tag="VoiceSeparate", QueueId=DEFAULT_QUEUE_ID, Size=2,
                                         OrderByTime="Asc", **kwargs)
        return [j["JobId"] for j in response.get("JobsDetail", [])], response["NextToken"]

    first, token = listed()
    emulator.register_job(bucket, job("jearly", "2022-07-01T10:00:01+0800"))  # before the token's position
    emulator.register_job(bucket, job("jlate", "2022-07-01T10:00:05+0800"))  # after it
    second, token = listed(NextToken=token)
    third, token = listed(NextToken=token)
    assert (first, second, third, token or "") == (["j0", "j1"], ["j2", "jlate"], ["j3", "j4"], "")
    # Registering a job again (CI's account changed: it finished) moves it, never duplicates it.
    emulator.register_job(bucket, job("j0", "2022-07-01T10:00:09+0800", state="Failed"))
    assert listed(States="Failed")[0] == ["j0"]
    assert listed()[0] == ["jearly", "j1"]
