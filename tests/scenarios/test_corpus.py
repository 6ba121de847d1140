"""Every payload Tencent publishes (tests/fixtures/ci/) is handled end to end.

Callbacks go through the app against the emulator with the CI cross-check on, as deployed:
each is acknowledged (200), every output CI gave an MD5 for is verified and tagged, and the
rest are unverifiable. Job-query responses are read through the SDK's own XML reader.
"""
from __future__ import annotations

import json
import re

import pytest
from qcloud_cos.cos_comm import xml_to_dict

from handlers.ci.jobs import answer_from, queue_page
from handlers.intake.callback import all_outputs, parse_callback
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from tests.conftest import http_event, invoke
from tests.corpus import CALLBACK_KINDS, RESPONSE_KINDS, entries, seed, seeded

CALLBACKS = entries(*CALLBACK_KINDS)
RESPONSES = entries(*RESPONSE_KINDS)


def test_the_corpus_is_broad_and_every_entry_names_its_source():
    everything = entries()
    assert len(everything) >= 60
    assert len({e.job_type for e in everything if e.job_type}) >= 24
    assert all(e.source.startswith("https://") for e in everything)


@pytest.mark.slow
@pytest.mark.parametrize("payload", CALLBACKS, ids=lambda p: p.file)
def test_a_published_callback_is_acknowledged_and_its_outputs_verified(emulator, make_app, payload):
    body = seeded(payload)
    callback = seed(emulator, payload, body)
    app = make_app(VERIFY_WITH_CI="true", ALLOWED_BUCKETS="*", DEFAULT_REGION="ap-chongqing")
    content_type = "application/json" if payload.format == "json" else "application/xml"
    status, result, _ = invoke(app, http_event(body, content_type))
    assert status == 200, result
    expected = {(o.bucket, o.key): o.expected_md5 for job in callback.jobs_detail for o in all_outputs(job)}
    got = {(o["bucket"], o["key"]): o for job in result["jobs"] for o in job["objects"]}
    assert set(got) == set(expected)
    for (bucket, key), md5 in expected.items():
        verdict = got[(bucket, key)]["verdict"]
        if not bucket:
            assert verdict == "unverifiable"
        elif md5:
            assert verdict == "verified", got[(bucket, key)]
            assert emulator.tags(bucket, key)[VERIFY_TAG] == "verified"
        else:
            assert verdict == "unverifiable", got[(bucket, key)]
    for job, entry in zip(callback.jobs_detail, result["jobs"], strict=False):
        assert entry["jobId"] == job.job_id
        for obj in entry["objects"]:
            if obj["verdict"] == "verified":
                assert emulator.tags(obj["bucket"], obj["key"])[JOB_TAG] == job.job_id


@pytest.mark.parametrize("payload", RESPONSES, ids=lambda p: p.file)
def test_a_published_job_query_answer_is_read(payload):
    if payload.format == "json":
        data = json.loads(payload.body)
        data = data.get("Response", data)
    else:
        data = xml_to_dict(payload.body)
    answer = answer_from(data)
    assert answer.jobs, "no job read"
    for job in answer.jobs.values():
        assert job.job_id and job.state


@pytest.mark.parametrize("payload", entries("DescribeMediaQueues"), ids=lambda p: p.file)
def test_a_published_queue_list_names_its_queues(payload):
    ids, _ = queue_page(xml_to_dict(payload.body))
    assert ids and all(ids)


# A WorkflowFinish names its tasks' jobs and no outputs: CI has them. The published pages give
# no job for these task ids, so each task's job is a published job of its type, renamed.
TASK_JOBS = {"Transcode": "describemediajob-transcode-2.xml", "Snapshot": "taskfinish-snapshot-1.xml"}


@pytest.mark.parametrize("payload", entries("WorkflowFinish"), ids=lambda p: p.file)
def test_a_published_workflow_finish_is_expanded_through_ci_and_its_jobs_outputs_verified(emulator, make_app,
                                                                                          payload):
    execution = parse_callback(payload.body).workflow_execution
    published = {p.file: p for p in entries()}
    jobs = {}
    for task in execution.tasks:
        source = published[TASK_JOBS[task.type]]
        original = parse_callback(source.body).jobs_detail[0].job_id
        # The task's id, in the workflow's bucket (the published jobs ran in test-123456789).
        body = re.sub(r"test-123456789(?!\d)", execution.bucket_id,
                      seeded(source).decode().replace(original, task.job_id)).encode()
        jobs[task.job_id] = seed(emulator, source, body).jobs_detail[0]
    app = make_app(VERIFY_WITH_CI="true", ALLOWED_BUCKETS="*", DEFAULT_REGION="ap-chongqing")
    content_type = "application/json" if payload.format == "json" else "application/xml"
    status, result, _ = invoke(app, http_event(payload.body, content_type))
    assert status == 200, result
    assert {entry["jobId"]: entry["tag"] for entry in result["jobs"]} == {t.job_id: t.type for t in execution.tasks}
    for entry in result["jobs"]:
        expected = {o.key: o.expected_md5 for o in all_outputs(jobs[entry["jobId"]])}
        got = {o["key"]: o for o in entry["objects"]}
        assert set(got) == set(expected) and expected
        for key, md5 in expected.items():
            assert got[key]["bucket"] == execution.bucket_id
            assert got[key]["verdict"] == ("verified" if md5 else "unverifiable"), got[key]
            if md5:
                assert emulator.tags(execution.bucket_id, key) == {VERIFY_TAG: "verified", JOB_TAG: entry["jobId"]}
