"""Moves: the protocol, destinations, idempotent replays and concurrent deliveries."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from handlers.config import ConfigError
from handlers.settings import Settings
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

JOB = "j0000000000000000000000000000001"
VOICE = b"voice " * 3000
MOVE_ALL = {"ACTION_VERIFIED": "tag,move", "ACTION_FAILED": "tag,move"}


def event(md5s: dict[str, str], **kwargs) -> dict:
    return http_event(job_xml(md5s=md5s, names=list(md5s), **kwargs))


def where(emulator, data: bytes) -> list[str]:
    """Every key in the bucket holding exactly these bytes."""
    return [k for k in emulator.keys(BUCKET) if emulator.object_bytes(BUCKET, k) == data]


def writes(emulator) -> list:
    return [r for r in emulator.requests if r.is_write]


def test_verified_object_moves_with_its_metadata_and_tags(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE, content_type="audio/mpeg", metadata={"x-cos-meta-origin": "ci"})
    emulator.set_tags(BUCKET, "out/a.mp3", {"team": "audio"})
    app = make_app(**MOVE_ALL)
    status, body, _ = invoke(app, event({"out/a.mp3": md5(VOICE)}))
    obj = body["jobs"][0]["objects"][0]
    assert status == 200 and obj["verdict"] == "verified"
    assert obj["actions"] == ["tagged", "moved:verified/out/a.mp3"]
    assert where(emulator, VOICE) == ["verified/out/a.mp3"]
    info = emulator.object_info(BUCKET, "verified/out/a.mp3")
    assert info["content_type"] == "audio/mpeg" and info["metadata"] == {"x-cos-meta-origin": "ci"}
    assert emulator.tags(BUCKET, "verified/out/a.mp3") == {"team": "audio", VERIFY_TAG: "verified", JOB_TAG: JOB}
    copy = [r for r in emulator.requests if "x-cos-copy-source" in r.headers]
    assert len(copy) == 1 and copy[0].headers["x-cos-copy-source-if-match"] == f'"{md5(VOICE)}"'


def test_move_only_carries_the_users_tags_without_adding_ours(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    emulator.set_tags(BUCKET, "out/a", {"team": "audio"})
    app = make_app(ACTION_VERIFIED="move")
    _, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert body["jobs"][0]["objects"][0]["actions"] == ["moved:verified/out/a"]
    assert emulator.tags(BUCKET, "verified/out/a") == {"team": "audio"}


def test_mismatch_is_quarantined_only_after_hashing(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", b"corrupt")
    app = make_app(**MOVE_ALL)
    status, body, _ = invoke(app, event({"out/a": md5(b"good")}))
    obj = body["jobs"][0]["objects"][0]
    assert status == 200 and (obj["verdict"], obj["method"]) == ("mismatch", "content")
    assert obj["actions"] == ["tagged", "moved:quarantine/out/a"]
    assert where(emulator, b"corrupt") == ["quarantine/out/a"]
    assert emulator.tags(BUCKET, "quarantine/out/a")[VERIFY_TAG] == "mismatch"


def test_missing_unverifiable_and_superseded_objects_are_never_moved(emulator, make_app):
    emulator.put_object(BUCKET, "out/listed", b"no md5 for me")
    job_end = datetime(2022, 7, 1, 10, 12, 32, tzinfo=timezone(timedelta(hours=8)))
    emulator.put_object(BUCKET, "out/later", b"a later job", last_modified=(job_end + timedelta(hours=1)).timestamp())
    app = make_app(**MOVE_ALL)
    body = job_xml(md5s={"out/none": "a" * 32, "out/later": md5(b"this job")}, names=["out/listed"],
                   times=("2022-07-01T10:12:26+0800", "2022-07-01T10:12:27+0800", "2022-07-01T10:12:32+0800"))
    status, result, _ = invoke(app, http_event(body))
    verdicts = {o["key"]: (o["verdict"], o["actions"]) for o in result["jobs"][0]["objects"]}
    assert verdicts == {"out/none": ("missing", []), "out/later": ("superseded", []),
                        "out/listed": ("unverifiable", ["tagged"])}
    assert sorted(emulator.keys(BUCKET)) == ["out/later", "out/listed"]
    assert [r for r in emulator.requests if "x-cos-copy-source" in r.headers or r.method == "DELETE"] == []


def test_template_destination_in_another_bucket(emulator, make_app):
    emulator.create_bucket("done-1250000000", region=REGION)
    emulator.put_object(BUCKET, "out/a", VOICE)
    app = make_app(ACTION_VERIFIED="move", VERIFIED_PREFIX="{verdict}/{jobId}/{key}", VERIFIED_BUCKET="done-1250000000")
    _, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert body["jobs"][0]["objects"][0]["actions"] == [f"moved:done-1250000000/verified/{JOB}/out/a"]
    assert emulator.object_bytes("done-1250000000", f"verified/{JOB}/out/a") == VOICE
    assert emulator.object_bytes(BUCKET, "out/a") is None


def test_large_objects_are_copied_in_parts_each_pinned_to_the_verified_version(emulator, make_app):
    data = bytes(range(256)) * (10 * 1024)  # 2.5 MiB
    etag = emulator.put_object(BUCKET, "out/big", data, content_type="audio/wav", part_size=1 << 20)
    app = make_app(ACTION_VERIFIED="move", MULTIPART_COPY_THRESHOLD_MB="2", COPY_PART_MB="1")
    status, body, _ = invoke(app, event({"out/big": md5(data)}))
    assert status == 200 and body["jobs"][0]["objects"][0]["actions"] == ["moved:verified/out/big"]
    assert emulator.object_bytes(BUCKET, "verified/out/big") == data
    assert emulator.object_info(BUCKET, "verified/out/big")["content_type"] == "audio/wav"
    parts = [r for r in emulator.requests if "partNumber" in r.query]
    assert len(parts) == 3 and all(r.headers["x-cos-copy-source-if-match"] == f'"{etag}"' for r in parts)


def test_a_moved_objects_etag_is_the_one_its_copy_has(emulator, make_app):
    """A copy in one request of an object uploaded in parts gets an ETag of its own: the answer names
    the ETag of the object a consumer finds at the destination, on the first delivery and on a
    replay alike (red-team finding)."""
    data = bytes(range(256)) * (10 * 1024)  # 2.5 MiB, uploaded in parts
    source_etag = emulator.put_object(BUCKET, "out/big", data, part_size=1 << 20)
    app = make_app(ACTION_VERIFIED="tag,move")  # below MULTIPART_COPY_THRESHOLD_MB: one PUT copy
    first = invoke(app, event({"out/big": md5(data)}))[1]["jobs"][0]["objects"][0]
    held = emulator.object_info(BUCKET, "verified/out/big")["etag"]
    assert held != source_etag and first["actions"] == ["tagged", "moved:verified/out/big"]
    replay = invoke(app, event({"out/big": md5(data)}))[1]["jobs"][0]["objects"][0]
    assert (first["etag"], replay["etag"]) == (held, held)


def test_replay_after_a_complete_move_reports_the_same_and_writes_nothing(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    emulator.put_object(BUCKET, "out/b", b"corrupt")
    app = make_app(**MOVE_ALL)
    callback = event({"out/a": md5(VOICE), "out/b": md5(b"good")})
    first = invoke(app, callback)
    emulator.clear_requests()
    second = invoke(app, callback)
    assert first[0] == second[0] == 200
    strip = lambda b: [(o["key"], o["verdict"], o["actions"]) for o in b["jobs"][0]["objects"]]  # noqa: E731
    assert strip(first[1]) == strip(second[1])
    assert writes(emulator) == []


@pytest.mark.slow
def test_replay_finishes_a_move_interrupted_before_the_delete(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    emulator.add_fault(method="DELETE", status=503, times=None)
    app = make_app(ACTION_VERIFIED="tag,move")
    status, body, headers = invoke(app, event({"out/a": md5(VOICE)}), {"time_limit_in_ms": 4000})
    assert status == 503 and "Retry-After" in headers
    assert sorted(where(emulator, VOICE)) == ["out/a", "verified/out/a"]  # both: nothing lost
    emulator.clear_faults()
    status, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert status == 200 and where(emulator, VOICE) == ["verified/out/a"]


def test_destination_with_other_bytes_is_never_overwritten(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    emulator.put_object(BUCKET, "verified/out/a", b"an earlier job's result")
    app = make_app(ACTION_VERIFIED="move")
    status, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    obj = body["jobs"][0]["objects"][0]
    assert status == 503 and "already exists with other bytes" in obj["reason"]
    assert emulator.object_bytes(BUCKET, "verified/out/a") == b"an earlier job's result"
    assert emulator.object_bytes(BUCKET, "out/a") == VOICE


def test_copy_precondition_failure_keeps_the_source_and_asks_for_a_retry(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    emulator.add_fault(method="PUT", key="verified/out/a", query="!", status=412, code="PreconditionFailed")
    app = make_app(ACTION_VERIFIED="move")
    status, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert status == 503 and "changed while it was being moved" in body["jobs"][0]["objects"][0]["reason"]
    assert where(emulator, VOICE) == ["out/a"]
    status, _, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert status == 200 and where(emulator, VOICE) == ["verified/out/a"]


def test_copy_answering_200_with_an_error_body_is_retried(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    fault = emulator.add_fault(method="PUT", query="!", copy_error_body=True, times=1)
    app = make_app(ACTION_VERIFIED="move")
    status, _, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert status == 200 and fault.hits == 1 and where(emulator, VOICE) == ["verified/out/a"]


@pytest.mark.slow
def test_concurrent_duplicate_deliveries_leave_exactly_one_copy(emulator, make_app):
    keys = [f"out/{i}" for i in range(6)]
    for key in keys:
        emulator.put_object(BUCKET, key, key.encode() * 1000)
    emulator.add_fault(method="HEAD", delay=0.02, times=None)  # widen the windows between steps
    apps = [make_app(**MOVE_ALL) for _ in range(4)]
    callback = event({k: md5(k.encode() * 1000) for k in keys})
    statuses = []
    threads = [threading.Thread(target=lambda a=a: statuses.append(invoke(a, callback)[0])) for a in apps * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    for key in keys:
        assert where(emulator, key.encode() * 1000) == [f"verified/{key}"]
        assert emulator.tags(BUCKET, f"verified/{key}") == {VERIFY_TAG: "verified", JOB_TAG: JOB}


@pytest.mark.parametrize("env, variable", [
    ({"VERIFIED_PREFIX": "", "ACTION_VERIFIED": "move"}, "VERIFIED_PREFIX"),
    ({"QUARANTINE_PREFIX": "bad/{jobId}"}, "QUARANTINE_PREFIX"),
    ({"VERIFIED_PREFIX": "x/{nope}/{key}"}, "VERIFIED_PREFIX"),
    ({"ACTION_FAILED": "move,delete"}, "ACTION_FAILED"),
    ({"COPY_PART_MB": "0"}, "COPY_PART_MB"),
])
def test_move_settings_are_validated(env, variable):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TENCENTCLOUD_SECRETID": "a", "TENCENTCLOUD_SECRETKEY": "b", **env})
    assert info.value.variable == variable


def test_an_empty_prefix_is_fine_with_another_bucket():
    s = Settings.from_env({"TENCENTCLOUD_SECRETID": "a", "TENCENTCLOUD_SECRETKEY": "b",
                           "VERIFIED_PREFIX": "", "VERIFIED_BUCKET": "done-1"})
    assert (s.verified_destination, s.verified_bucket) == ("{key}", "done-1")


def test_destination_of_the_same_size_with_other_bytes_is_not_taken_for_a_copy(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    emulator.put_object(BUCKET, "verified/out/a", VOICE[::-1])  # same size, other bytes
    app = make_app(ACTION_VERIFIED="move")
    status, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    assert status == 503 and "already exists with other bytes" in body["jobs"][0]["objects"][0]["reason"]
    assert emulator.object_bytes(BUCKET, "out/a") == VOICE


@pytest.mark.slow
def test_a_source_rewritten_after_the_copy_is_left_in_place(emulator, make_app):
    emulator.put_object(BUCKET, "out/a", VOICE)
    # Hold the confirming HEAD of the copy long enough for a later job to rewrite the source.
    emulator.add_fault(method="HEAD", key="verified/out/a", delay=0.4, times=2)

    def later_job_rewrites_the_source():
        while not any("x-cos-copy-source" in r.headers for r in emulator.requests):
            threading.Event().wait(0.01)
        emulator.put_object(BUCKET, "out/a", b"a later job's output")

    writer = threading.Thread(target=later_job_rewrites_the_source)
    writer.start()
    app = make_app(ACTION_VERIFIED="move")
    status, body, _ = invoke(app, event({"out/a": md5(VOICE)}))
    writer.join()
    assert status == 503 and "rewritten after it was copied" in body["jobs"][0]["objects"][0]["reason"]
    assert emulator.object_bytes(BUCKET, "out/a") == b"a later job's output"
    assert emulator.object_bytes(BUCKET, "verified/out/a") == VOICE
