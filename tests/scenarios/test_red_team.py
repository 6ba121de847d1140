"""The holes a red-team review found (issue 11), each reproduced through the app against the
emulator before it was closed. Races are staged with the emulator's delay faults and a thread
that watches its request log."""
from __future__ import annotations

import importlib
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
import xmltodict

from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from tests.conftest import function_env, http_event, invoke, md5
from tests.samples import BUCKET, job_xml

JOB = "j0000000000000000000000000000001"
VOICE = b"voice " * 3000


def register(emulator, body: bytes) -> None:
    """CI's job API knows the job exactly as `body` describes it."""
    detail = xmltodict.parse(body)["Response"]["JobsDetail"]
    emulator.register_job(detail["Input"]["BucketId"], detail)


def puts_to(emulator, key: str) -> list:
    return [r for r in emulator.requests if r.method == "PUT" and r.key == key]


# --- 1. a forged callback must not rewrite an audit report ---------------------------------

REPORT = f"ci-reports/{JOB}.json"


@pytest.mark.parametrize("forged", [
    job_xml(md5s=None, names=[], state="Failed", code="Forged", message="the forger's words"),
    job_xml(md5s=None, names=[], code="Success", message="the forger's words"),  # Success, no outputs
], ids=["failed", "success-without-outputs"])
def test_a_forged_callback_never_rewrites_the_audit_report(emulator, make_app, forged):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    genuine = job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])
    register(emulator, genuine)
    app = make_app(VERIFY_WITH_CI="true", REPORT_PREFIX="ci-reports/")
    assert invoke(app, http_event(genuine))[0] == 200
    report = emulator.object_bytes(BUCKET, REPORT)
    assert json.loads(report)["outcome"] == "verified"
    emulator.clear_requests()

    status, body, _ = invoke(app, http_event(forged))
    assert status == 403 and "CI does not confirm" in body["error"]
    assert emulator.object_bytes(BUCKET, REPORT) == report
    assert [r for r in emulator.requests if r.is_write] == []


def test_a_failed_job_ci_confirms_gets_a_report_in_cis_words(emulator, make_app):
    at_ci = job_xml(md5s=None, names=[], state="Failed", code="InvalidInput", message="no audio stream")
    register(emulator, at_ci)
    app = make_app(VERIFY_WITH_CI="true", REPORT_PREFIX="ci-reports/")
    claimed = job_xml(md5s=None, names=[], state="Failed", code="InvalidInput", message="the caller's own words")
    status, body, _ = invoke(app, http_event(claimed))
    assert status == 200 and body["jobs"][0]["outcome"] == "failed-job"
    report = json.loads(emulator.object_bytes(BUCKET, REPORT))
    assert (report["code"], report["message"]) == ("InvalidInput", "no audio stream")
    assert emulator.requests[0].service == "ci"


# --- 9. a destination equal to the source ---------------------------------------------------

def load_index(monkeypatch, env: dict[str, str]):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("index", None)
    return importlib.import_module("index")


def test_a_move_onto_the_source_itself_is_refused_at_cold_start(emulator, monkeypatch):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    env = function_env(emulator, ACTION_VERIFIED="tag,move", VERIFIED_BUCKET=BUCKET, VERIFIED_PREFIX="")
    index = load_index(monkeypatch, env)
    event = http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"]))
    event["queryString"] = {"token": "test-token"}
    result = index.main_handler(event, {"request_id": "r1", "time_limit_in_ms": 10000})
    body = json.loads(result["body"])
    assert result["statusCode"] == 500 and body["setting"] == "VERIFIED_PREFIX"
    assert "VERIFIED_BUCKET" in body["error"] and emulator.requests == []


@pytest.mark.parametrize("via", ["http", "queue"])
def test_an_object_already_at_its_destination_is_tagged_in_place(emulator, make_app, via):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    emulator.set_tags(BUCKET, "out/a.mp3", {"team": "audio"})
    # ALLOWED_BUCKETS=*: whether CI writes into VERIFIED_BUCKET cannot be known at cold start.
    app = make_app(ALLOWED_BUCKETS="*", ACTION_VERIFIED="tag,move", VERIFIED_BUCKET=BUCKET, VERIFIED_PREFIX="")
    body = job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])
    for _ in range(2):  # a replay ends the same
        if via == "http":
            status, answer, _ = invoke(app, http_event(body))
            assert status == 200
            obj = answer["jobs"][0]["objects"][0]
            assert (obj["verdict"], obj["actions"]) == ("verified", ["tagged"]) and "in place" in obj["reason"]
        else:
            answer = app.handle({"Records": [{"CMQ": {"msgId": "m1", "msgBody": body.decode()}}]}, {})
            assert answer["messages"][0]["jobs"][0]["outcome"] == "verified"
    assert emulator.keys(BUCKET) == ["out/a.mp3"] and emulator.object_bytes(BUCKET, "out/a.mp3") == VOICE
    assert emulator.tags(BUCKET, "out/a.mp3") == {"team": "audio", VERIFY_TAG: "verified", JOB_TAG: JOB}
    assert [r for r in emulator.requests if "x-cos-copy-source" in r.headers or r.method == "DELETE"] == []


# --- 7. the async Invoke is bounded by the time left ----------------------------------------

FUNCTION = {"function_name": "ci-callback-verifier", "namespace": "default", "function_version": "$LATEST",
            "request_id": "http-request-1"}


@pytest.fixture
def silent_scf():
    """An SCF endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_silent_scf_endpoint_gets_503_within_the_deadline(emulator, make_app, silent_scf):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    app = make_app(DISPATCH="async", SCF_ENDPOINT=silent_scf, DEFAULT_REGION="ap-chongqing")
    started = time.monotonic()
    status, body, headers = invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])),
                                   {**FUNCTION, "time_limit_in_ms": 3000})
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"the invocation ran {elapsed:.1f} s past a 3 s limit"
    assert status == 503 and headers["Retry-After"] == "30" and "inline" in body["error"]
    assert emulator.requests == []  # too little time left to start processing inline


@pytest.mark.slow
def test_a_silent_scf_endpoint_falls_back_to_inline_when_time_remains(emulator, make_app, silent_scf):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    app = make_app(DISPATCH="async", SCF_ENDPOINT=silent_scf, DEFAULT_REGION="ap-chongqing")
    started = time.monotonic()
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])),
                             {**FUNCTION, "time_limit_in_ms": 6000})
    elapsed = time.monotonic() - started
    assert elapsed < 6.0, f"the invocation ran {elapsed:.1f} s past a 6 s limit"
    assert status == 200 and body["jobs"][0]["outcome"] == "verified"


# --- 6. hashing watches the deadline --------------------------------------------------------

class ThrottlingProxy:
    """A TCP proxy in front of the emulator that sends answers at `rate` bytes per second:
    a slow body stream, as from a far region or a small function's share of the network."""

    def __init__(self, upstream: str, rate: int):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self._rate = rate
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(32)
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self._rate), daemon=True).start()

    @staticmethod
    def _pump(source, sink, rate) -> None:
        slice_bytes = 16 * 1024
        try:
            while data := source.recv(slice_bytes):
                sink.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._server.close()


def test_a_hash_that_cannot_finish_in_time_is_not_started(emulator, make_app):
    data = bytes(range(256)) * (192 * 1024)  # 48 MiB in parts: only its content can verify it
    emulator.put_object(BUCKET, "out/big.wav", data, part_size=8 << 20)
    app = make_app()  # HASH_MIB_PER_SECOND: 20 by default, 2.4 s for this object
    status, body, headers = invoke(app, http_event(job_xml(md5s={"out/big.wav": md5(data)}, names=["out/big.wav"])),
                                   {"request_id": "r", "time_limit_in_ms": 3000})
    obj = body["jobs"][0]["objects"][0]
    # No invocation of 3 s could hash it: 200 and a failed job, since another try would only
    # refuse it again (tests/checking/test_hash_planning.py has the rest of that contract).
    assert status == 200 and "Retry-After" not in headers and obj["verdict"] == "error" and obj["tooLarge"]
    assert body["jobs"][0]["outcome"] == "failed"
    assert f"not enough time to hash {len(data)} bytes" in obj["reason"]
    assert "timeout" in obj["reason"] and "DISPATCH=async" in obj["reason"]
    assert [r for r in emulator.requests if r.method == "GET" and not r.query] == []  # not started
    assert emulator.tags(BUCKET, "out/big.wav") == {}


@pytest.mark.slow
def test_hashing_stops_at_the_deadline(emulator, make_app):
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB in parts, sent at 4 MiB/s: 4 s
    emulator.put_object(BUCKET, "out/big.wav", data, part_size=4 << 20)
    proxy = ThrottlingProxy(emulator.endpoint, 4 << 20)
    try:
        app = make_app(COS_ENDPOINT=proxy.endpoint)  # 20 MiB/s assumed: the hash looks like it fits
        started = time.monotonic()
        status, body, _ = invoke(app, http_event(job_xml(md5s={"out/big.wav": md5(data)}, names=["out/big.wav"])),
                                 {"request_id": "r", "time_limit_in_ms": 3000})
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert elapsed < 3.0, f"the invocation ran {elapsed:.1f} s past a 3 s limit"
    obj = body["jobs"][0]["objects"][0]
    assert status == 503 and obj["verdict"] == "error"
    assert f"not enough time to hash {len(data)} bytes" in obj["reason"] and "DISPATCH=async" in obj["reason"]
    assert emulator.tags(BUCKET, "out/big.wav") == {}


# --- 2. a missing output is not another job's quarantined object ------------------------------

J2 = "j0000000000000000000000000000002"
MOVE_FAILED = {"ACTION_FAILED": "tag,move"}


def test_a_missing_output_is_missing_and_another_jobs_quarantined_object_is_untouched(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", b"corrupt")
    app = make_app(**MOVE_FAILED)
    first = job_xml(md5s={"out/a.mp3": md5(b"good")}, names=["out/a.mp3"])
    assert invoke(app, http_event(first))[1]["jobs"][0]["objects"][0]["actions"] == ["tagged", "moved:quarantine/out/a.mp3"]
    theirs = {VERIFY_TAG: "mismatch", JOB_TAG: JOB}
    assert emulator.tags(BUCKET, "quarantine/out/a.mp3") == theirs
    emulator.clear_requests()

    later = job_xml(md5s={"out/a.mp3": md5(b"J2's output")}, names=["out/a.mp3"], job_id=J2)
    status, body, _ = invoke(app, http_event(later))
    obj = body["jobs"][0]["objects"][0]
    assert status == 200 and (obj["verdict"], obj["actions"]) == ("missing", [])
    assert body["jobs"][0]["outcome"] == "failed"
    assert emulator.tags(BUCKET, "quarantine/out/a.mp3") == theirs
    assert emulator.object_bytes(BUCKET, "quarantine/out/a.mp3") == b"corrupt"
    assert [r for r in emulator.requests if r.is_write] == []

    # The job that did move it still recognises its own move on a replay.
    status, body, _ = invoke(app, http_event(first))
    assert status == 200 and body["jobs"][0]["objects"][0]["actions"] == ["tagged", "moved:quarantine/out/a.mp3"]


def test_a_job_id_template_proves_an_earlier_move_without_tags(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    app = make_app(ACTION_VERIFIED="move", VERIFIED_PREFIX="verified/{jobId}/{key}")
    callback = http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"]))
    first, second = invoke(app, callback), invoke(app, callback)
    moved = [f"moved:verified/{JOB}/out/a.mp3"]
    assert first[1]["jobs"][0]["objects"][0]["actions"] == second[1]["jobs"][0]["objects"][0]["actions"] == moved
    assert emulator.tags(BUCKET, f"verified/{JOB}/out/a.mp3") == {}


def test_another_jobs_verified_object_with_the_same_bytes_is_not_claimed(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    app = make_app(ACTION_VERIFIED="tag,move")
    invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])))
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"],
                                                     job_id=J2)))
    assert status == 200 and body["jobs"][0]["objects"][0]["verdict"] == "missing"
    assert emulator.tags(BUCKET, "verified/out/a.mp3") == {VERIFY_TAG: "verified", JOB_TAG: JOB}


# --- 3. a user's tag added while an object is checked is kept ---------------------------------

def when(emulator, seen, then) -> threading.Thread:
    """Run `then` in a thread as soon as a request `seen(record)` has been answered (or is
    being answered: the emulator logs a request just before it sends the answer)."""

    def watch():
        deadline = time.monotonic() + 10
        while not any(seen(r) for r in emulator.requests):
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)
        then()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_a_users_tag_added_while_the_object_is_hashed_is_kept(emulator, make_app):
    data = bytes(range(256)) * 8192  # 2 MiB in parts: only its content can verify it
    emulator.put_object(BUCKET, "out/a.wav", data, part_size=1 << 20)
    emulator.add_fault(method="GET", key="out/a.wav", query="!", delay=0.4)  # a hash that takes a while
    user = when(emulator, lambda r: r.method == "HEAD" and r.key == "out/a.wav",
                lambda: emulator.set_tags(BUCKET, "out/a.wav", {"team": "audio"}))
    status, body, _ = invoke(make_app(), http_event(job_xml(md5s={"out/a.wav": md5(data)}, names=["out/a.wav"])))
    user.join()
    assert status == 200 and body["jobs"][0]["objects"][0]["method"] == "content"
    assert emulator.tags(BUCKET, "out/a.wav") == {"team": "audio", VERIFY_TAG: "verified", JOB_TAG: JOB}


def test_our_tags_dropped_by_a_concurrent_writer_are_merged_back(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    # A user's tool read the tags (none) before our write and writes its own set after it.
    emulator.add_fault(method="GET", key="out/a.mp3", query="tagging", delay=0.3, times=None)
    user = when(emulator, lambda r: r.method == "PUT" and "tagging" in r.query,
                lambda: emulator.set_tags(BUCKET, "out/a.mp3", {"team": "audio"}))
    status, _, _ = invoke(make_app(), http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])))
    user.join()
    assert status == 200
    assert emulator.tags(BUCKET, "out/a.mp3") == {"team": "audio", VERIFY_TAG: "verified", JOB_TAG: JOB}


# --- 4. a move onto a destination holding the same bytes keeps the destination's tags ----------

@pytest.mark.parametrize("tagging", ["tag,move", "move"])
def test_a_move_onto_the_same_bytes_keeps_the_destinations_tags(emulator, make_app, tagging):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    emulator.set_tags(BUCKET, "out/a.mp3", {"origin": "ci"})
    emulator.put_object(BUCKET, "verified/out/a.mp3", VOICE)  # a replay after an interrupted move
    emulator.set_tags(BUCKET, "verified/out/a.mp3", {"reviewed": "yes"})  # a user tagged the destination
    app = make_app(ACTION_VERIFIED=tagging)
    status, body, _ = invoke(app, http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])))
    assert status == 200 and body["jobs"][0]["objects"][0]["actions"][-1] == "moved:verified/out/a.mp3"
    ours = {VERIFY_TAG: "verified", JOB_TAG: JOB} if tagging == "tag,move" else {}
    assert emulator.tags(BUCKET, "verified/out/a.mp3") == {"reviewed": "yes", "origin": "ci", **ours}
    assert emulator.keys(BUCKET) == ["verified/out/a.mp3"]


# --- 5. a tag never stays on bytes that were never checked ------------------------------------

def test_an_object_rewritten_before_the_tag_write_is_superseded_and_left_untagged(emulator, make_app):
    emulator.put_object(BUCKET, "out/a.mp3", VOICE)
    emulator.add_fault(method="PUT", key="out/a.mp3", query="tagging", delay=0.3)  # the write lands late
    later = when(emulator, lambda r: r.method == "HEAD" and r.key == "out/a.mp3",
                 lambda: emulator.put_object(BUCKET, "out/a.mp3", b"a later job's bytes"))
    status, body, _ = invoke(make_app(), http_event(job_xml(md5s={"out/a.mp3": md5(VOICE)}, names=["out/a.mp3"])))
    later.join()
    obj = body["jobs"][0]["objects"][0]
    assert emulator.object_bytes(BUCKET, "out/a.mp3") == b"a later job's bytes"
    assert emulator.tags(BUCKET, "out/a.mp3") == {}  # nothing of ours on bytes nobody checked
    assert status == 200 and obj["verdict"] == "superseded" and "rewritten" in obj["reason"]
