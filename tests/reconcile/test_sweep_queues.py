"""The sweep lists CI's jobs per media queue, as DescribeMediaJobs requires, and skips unreadable jobs."""
from __future__ import annotations

import json

import pytest
import xmltodict

from handlers.config import ConfigError
from handlers.settings import Settings
from handlers.storage.tags import VERIFY_TAG
from localcloud.cos.ci import DEFAULT_QUEUE_ID
from tests.conftest import function_env, md5
from tests.samples import BUCKET, REGION, job_xml

TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}
CONTEXT = {"time_limit_in_ms": 30000}


def job_id(n: int) -> str:
    return f"j{n:031d}"


def seed(emulator, n: int, queue: str | None = None, md5_value: str | None = None) -> None:
    """An output object and the CI job that wrote it, in `queue` (the default queue when None)."""
    key, data = f"out/{n}.mp3", f"job {n}".encode()
    emulator.put_object(BUCKET, key, data)
    detail = xmltodict.parse(job_xml(md5s={key: md5_value or md5(data)}, names=[key], job_id=job_id(n)))
    detail = detail["Response"]["JobsDetail"]
    if queue:
        detail["QueueId"] = queue
    emulator.register_job(BUCKET, detail)


def ci_requests(emulator, bucket: str = BUCKET) -> list:
    return [r for r in emulator.requests if r.service == "ci" and r.bucket == bucket]


def test_the_sweep_discovers_the_queues_and_lists_each(emulator, make_app):
    seed(emulator, 1)
    seed(emulator, 2, queue="pvoice")
    seed(emulator, 3, queue="pnight")
    emulator.declare_queue(BUCKET, "pnight", state="Paused")  # a paused queue's finished jobs still count
    emulator.declare_queue(BUCKET, "pempty")
    result = make_app(DEFAULT_REGION=REGION).handle(TIMER, CONTEXT)["sweep"]
    assert (result["queues"], result["listed"], result["checked"], result["errors"]) == (4, 3, 3, [])
    assert all(emulator.tags(BUCKET, f"out/{n}.mp3")[VERIFY_TAG] == "verified" for n in (1, 2, 3))
    requests = ci_requests(emulator)
    assert [r.key for r in requests] == ["queue"] + ["jobs"] * 4
    assert [r.query["queueId"] for r in requests[1:]] == [DEFAULT_QUEUE_ID, "pvoice", "pnight", "pempty"]
    assert requests[0].query.get("pageNumber") == "1"


def test_queue_discovery_follows_the_pages(emulator, make_app):
    for n in range(12):
        emulator.declare_queue(BUCKET, f"pq{n:02d}")
    seed(emulator, 4, queue="pq11")  # on the second page of queues
    result = make_app(DEFAULT_REGION=REGION).handle(TIMER, CONTEXT)["sweep"]
    assert (result["queues"], result["checked"]) == (12, 1)
    pages = [r.query.get("pageNumber") for r in ci_requests(emulator) if r.key == "queue"]
    assert pages == ["1", "2"]


def test_reconcile_queues_names_the_queues_and_nothing_is_discovered(emulator, make_app):
    seed(emulator, 5, queue="pvoice")
    seed(emulator, 6, queue="pother")
    app = make_app(DEFAULT_REGION=REGION, RECONCILE_QUEUES=f"{BUCKET}:pvoice")
    result = app.handle(TIMER, CONTEXT)["sweep"]
    assert (result["queues"], result["checked"]) == (1, 1)
    assert emulator.tags(BUCKET, "out/6.mp3") == {}  # not in a named queue
    assert [(r.key, r.query.get("queueId")) for r in ci_requests(emulator)] == [("jobs", "pvoice")]


def test_one_unreadable_job_is_skipped_and_logged_not_the_page(emulator, make_app, log_lines):
    seed(emulator, 7)
    seed(emulator, 8, md5_value="not-an-md5")  # CI's own answer cannot be trusted for this one
    seed(emulator, 9)
    result = make_app(DEFAULT_REGION=REGION).handle(TIMER, CONTEXT)["sweep"]
    assert (result["listed"], result["checked"], result["unreadable"], result["errors"]) == (
        2, 2, [job_id(8)], [])
    assert all(emulator.tags(BUCKET, f"out/{n}.mp3")[VERIFY_TAG] == "verified" for n in (7, 9))
    assert emulator.tags(BUCKET, "out/8.mp3") == {}
    warnings = [entry for entry in map(json.loads, log_lines) if entry.get("jobId") == job_id(8)]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING" and "Md5" in warnings[0]["reason"]


def test_a_failed_queue_discovery_is_reported_and_other_buckets_still_swept(emulator, make_app):
    emulator.create_bucket("second-123456789", region=REGION)
    emulator.add_fault(method="GET", key="queue", service="ci", status=403, code="AccessDenied", times=None)
    app = make_app(DEFAULT_REGION=REGION, RECONCILE_BUCKETS=f"{BUCKET},second-123456789",
                   RECONCILE_QUEUES=f"second-123456789:{DEFAULT_QUEUE_ID}")
    result = app.handle(TIMER, CONTEXT)["sweep"]
    assert len(result["errors"]) == 1 and "media queues of test-123456789" in result["errors"][0]
    assert "403" in result["errors"][0]
    assert [(r.bucket, r.key) for r in emulator.requests if r.service == "ci"] == [
        (BUCKET, "queue"), ("second-123456789", "jobs")]


@pytest.mark.parametrize("value, queues", [
    ("", {BUCKET: ()}),
    ("pa", {BUCKET: ("pa",), "b2-1250000000": ("pa",)}),
    (f"pa, {BUCKET}:pb,b2-1250000000:pc", {BUCKET: ("pa", "pb"), "b2-1250000000": ("pa", "pc")}),
])
def test_reconcile_queues_setting(emulator, value, queues):
    env = function_env(emulator, DEFAULT_REGION=REGION, RECONCILE_BUCKETS=f"{BUCKET},b2-1250000000",
                       RECONCILE_QUEUES=value)
    settings = Settings.from_env(env)
    assert {bucket: settings.queues_for(bucket) for bucket in queues} == queues


@pytest.mark.parametrize("value, problem", [
    ("p/1", "is not a CI queue id"),
    (f"{BUCKET}:", "is not a CI queue id"),
    ("Not_A_Bucket:p1", "is not a bucket name"),
    ("other-1250000000:p1", "which RECONCILE_BUCKETS does not sweep"),
])
def test_reconcile_queues_refuses_what_cannot_be_right(emulator, value, problem):
    env = function_env(emulator, DEFAULT_REGION=REGION, RECONCILE_QUEUES=value)
    with pytest.raises(ConfigError, match=problem) as raised:
        Settings.from_env(env)
    assert raised.value.variable == "RECONCILE_QUEUES"
