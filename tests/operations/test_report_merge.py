"""VERIFY_MODE=server: the media job's audit report and the FileHashCode callbacks that complete it, written by
invocations that overlap. A `pending` entry never replaces a final one for the same key and ETag, whoever writes
last; the report, the tags and the answer agree at rest, so `dev.py report` (handlers/operations/report_command/) gates on it.

The races are staged with the emulator's own means (a slow request of one invocation, faults applied in turn),
the FileHashCode callback delivered through App.handle while the media job's invocation is held."""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from typing import Any

import pytest

from handlers.storage.tags import VERIFY_TAG
from localcloud.cos.file_jobs import SYNC_LIMIT, FileJobCallback
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

JOB = "j0000000000000000000000000000001"
REPORT = f"reports/{JOB}.json"
SMALL = b"voice track " * 200_000  # 2.4 MB, uploaded in parts: its ETag is not its MD5, CI's filehash decides
WRONG = "1" * 32  # what CI claims the large output hashes to: it does not


def big_object(emulator, key: str = "out/big.wav") -> None:
    """128 MiB in parts: too large for the synchronous hash, so a FileHashCode job hashes it."""
    chunk = hashlib.sha256(key.encode()).digest() * (1 << 15)  # 1 MiB
    emulator.put_object(BUCKET, key, (chunk for _ in range(SYNC_LIMIT >> 20)), part_size=8 << 20)


@pytest.fixture
def posted(emulator) -> list[FileJobCallback]:
    held: list[FileJobCallback] = []
    emulator.callback_sink = held.append
    return held


def server_env(**extra: str) -> dict[str, str]:
    return {"VERIFY_MODE": "server", "REPORT_PREFIX": "reports/", "DEFAULT_REGION": REGION,
            "HASH_CALLBACK_URL": "https://fn.example/cb?token=test-token", **extra}


def report_exit_code(emulator) -> int:
    from handlers.operations.report_command.command import main as report_command
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint}
    return report_command(["--bucket", BUCKET, "--region", REGION, "--reports-prefix", "reports/"], env,
                          io.StringIO(), io.StringIO())


class Invocation(threading.Thread):
    """The media job's callback, invoked in the background (the first SCF instance)."""

    def __init__(self, app, body: bytes):
        super().__init__(daemon=True)
        self.app, self.body = app, body
        self.answer: tuple[int, dict, dict] | None = None

    def run(self) -> None:
        self.answer = invoke(self.app, http_event(self.body))


def wait_until(condition, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "the staged moment never came"
        time.sleep(0.01)


def entries(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["key"]: o for o in report["objects"]}


@pytest.mark.slow
@pytest.mark.parametrize("action_failed", ["tag", "tag,move"])
def test_the_hash_result_stands_when_the_media_jobs_invocation_writes_its_report_later(emulator, make_app, posted,
                                                                                      action_failed):
    """Issue 19, defect 4: the FileHashCode callback finished (mismatch: tags and report) while the media job's
    own invocation was still waiting on another output's synchronous filehash; that invocation then wrote the
    whole report and turned the merged `mismatch` back into `pending`, and the report command exited 0.
    With ACTION_FAILED=tag,move the mismatch is moved to quarantine: its entry names the copy's ETag."""
    big_object(emulator)
    emulator.put_object(BUCKET, "out/small.mp3", SMALL, part_size=1 << 20)
    slow_hash = emulator.add_fault(method="GET", key="out/small.mp3", query="ci-process", delay=4.0)
    media_app = make_app(**server_env(ACTION_FAILED=action_failed))
    hash_app = make_app(**server_env(ACTION_FAILED=action_failed))  # another instance takes the hash callback
    media = Invocation(media_app, job_xml({"out/big.wav": WRONG, "out/small.mp3": md5(SMALL)}, []))
    media.start()
    wait_until(lambda: posted)  # CI hashed the large output while the small one's filehash is still running
    status, answer, _ = invoke(hash_app, http_event(posted[0].body, posted[0].content_type))
    assert status == 200 and answer["jobs"][0]["objects"][0]["verdict"] == "mismatch"
    # Staged as in the issue: the hash callback's report is written, the media job's invocation not yet done.
    assert media.is_alive() and slow_hash.hits == 1
    assert set(entries(json.loads(emulator.object_bytes(BUCKET, REPORT)))) == {"out/big.wav"}
    media.join(30)
    assert media.answer is not None and media.answer[0] == 200 and len(report_requests(emulator, "PUT")) == 2
    assert {o["key"]: o["verdict"] for o in media.answer[1]["jobs"][0]["objects"]} == {
        "out/big.wav": "pending", "out/small.mp3": "verified"}  # what it knew when it answered

    report = json.loads(emulator.object_bytes(BUCKET, REPORT))
    big = entries(report)["out/big.wav"]
    assert (big["verdict"], big["etag"]) == ("mismatch", answer["jobs"][0]["objects"][0]["etag"])
    assert entries(report)["out/small.mp3"]["verdict"] == "verified" and report["outcome"] == "failed"
    where = "quarantine/out/big.wav" if "move" in action_failed else "out/big.wav"
    assert emulator.tags(BUCKET, where)[VERIFY_TAG] == "mismatch"
    assert emulator.object_info(BUCKET, where)["etag"] == big["etag"]
    assert report_exit_code(emulator) == 1


def report_requests(emulator, method: str) -> list:
    return [r for r in emulator.requests if r.key == REPORT and r.method == method]


@pytest.mark.slow
def test_a_hash_result_overwritten_after_it_was_read_is_written_again(emulator, make_app, posted):
    """The read-then-write window, hash callback's side: the media job's invocation read the report before the
    hash result was written, and its `pending` write lands after it (its PUT held 3 s). The hash callback's
    invocation reads the report back after its write (held until the other write has landed), finds its
    `mismatch` turned back into `pending` for the same ETag, and writes it again."""
    big_object(emulator)
    emulator.put_object(BUCKET, "out/small.mp3", SMALL, part_size=1 << 20)
    held_put = emulator.add_fault(method="PUT", key=REPORT, delay=3.0)
    emulator.add_fault(method="GET", key=REPORT, times=2)  # the media job's read, the hash callback's...
    emulator.add_fault(method="GET", key=REPORT, delay=4.5)  # ...and the hash callback's read-back, late
    media = Invocation(make_app(**server_env()), job_xml({"out/big.wav": WRONG, "out/small.mp3": md5(SMALL)}, []))
    media.start()
    wait_until(lambda: posted and held_put.hits == 1)  # the media job's report write is on its way, held
    status, answer, _ = invoke(make_app(**server_env()), http_event(posted[0].body, posted[0].content_type))
    assert status == 200 and answer["jobs"][0]["objects"][0]["verdict"] == "mismatch"
    media.join(30)
    assert media.answer is not None and media.answer[0] == 200
    puts = report_requests(emulator, "PUT")
    held, hashed = puts[[r.fault for r in puts].index(True)], next(r for r in puts if not r.fault)
    assert held.started < hashed.started and hashed.finished < held.finished  # the pending write landed last

    report = json.loads(emulator.object_bytes(BUCKET, REPORT))
    assert {k: o["verdict"] for k, o in entries(report).items()} == {"out/big.wav": "mismatch",
                                                                     "out/small.mp3": "verified"}
    assert report["outcome"] == "failed" and emulator.tags(BUCKET, "out/big.wav")[VERIFY_TAG] == "mismatch"
    assert report_exit_code(emulator) == 1
    assert len(puts) == 3  # the media job's, the hash result, and the hash result once more after its read-back


@pytest.mark.slow
def test_the_jobs_other_outputs_stand_when_a_hash_result_read_before_them_lands_after(emulator, make_app, posted):
    """The same window, the media job's side: the hash callback's invocation read no report yet and its write
    of the one object it hashed is held (5 s) until after the media job's whole report landed. The media job's
    invocation reads the report back (late) after its write, finds its other output gone from it, and writes
    the job's report again with the hash result in it."""
    big_object(emulator)
    emulator.put_object(BUCKET, "out/small.mp3", SMALL, part_size=1 << 20)
    emulator.add_fault(method="GET", key="out/small.mp3", query="ci-process", delay=4.0)
    held_put = emulator.add_fault(method="PUT", key=REPORT, delay=5.0)  # the first report write: the hash result's
    emulator.add_fault(method="GET", key=REPORT, times=2)  # the hash callback's read, the media job's...
    emulator.add_fault(method="GET", key=REPORT, delay=4.0)  # ...and the media job's read-back, late
    media = Invocation(make_app(**server_env()), job_xml({"out/big.wav": WRONG, "out/small.mp3": md5(SMALL)}, []))
    media.start()
    wait_until(lambda: posted)  # while the media job's invocation waits on the small output's filehash
    status, answer, _ = invoke(make_app(**server_env()), http_event(posted[0].body, posted[0].content_type))
    assert status == 200 and answer["jobs"][0]["objects"][0]["verdict"] == "mismatch"
    media.join(30)
    assert media.answer is not None and media.answer[0] == 200
    puts = report_requests(emulator, "PUT")
    held, whole = puts[[r.fault for r in puts].index(True)], next(r for r in puts if not r.fault)
    assert held_put.hits == 1 and held.started < whole.started and whole.finished < held.finished  # partial last

    report = json.loads(emulator.object_bytes(BUCKET, REPORT))
    assert {k: o["verdict"] for k, o in entries(report).items()} == {"out/big.wav": "mismatch",
                                                                     "out/small.mp3": "verified"}
    assert report["outcome"] == "failed"
    assert report_exit_code(emulator) == 1
    assert len(puts) == 3  # the whole report, the hash result, and the whole report once more after its read-back


# --- the merge itself (pure) ---------------------------------------------------------------------

def report(outcome: str, *objects: tuple[str, str, str], **extra: Any) -> bytes:
    return json.dumps({"jobId": JOB, "outcome": outcome, **extra, "objects": [
        {"bucket": BUCKET, "key": key, "verdict": verdict, "etag": etag} for key, verdict, etag in objects]}).encode()


def merged(earlier: bytes | None, update: bytes, partial: bool) -> dict[str, Any]:
    from handlers.operations.audit import merged_report
    return json.loads(merged_report(earlier, update, partial))


def test_a_whole_report_keeps_a_final_verdict_for_the_version_it_calls_pending():
    earlier = report("failed", ("out/big.wav", "mismatch", "e1-16"))
    whole = report("pending", ("out/big.wav", "pending", "e1-16"), ("out/small.mp3", "verified", "e2-3"))
    result = merged(earlier, whole, partial=False)
    assert [(o["key"], o["verdict"]) for o in result["objects"]] == [("out/big.wav", "mismatch"),
                                                                    ("out/small.mp3", "verified")]
    assert result["outcome"] == "failed"
    # A final verdict about a moved copy names the copy's ETag, and the version it checked as sourceEtag.
    moved = json.loads(report("failed", ("out/big.wav", "mismatch", "copy")))
    moved["objects"][0]["sourceEtag"] = "e1-16"
    assert merged(json.dumps(moved).encode(), whole, partial=False)["objects"][0]["verdict"] == "mismatch"


def test_a_whole_report_replaces_what_it_says_about_a_later_version_and_drops_what_it_does_not_name():
    """A replay after the output was rewritten: `pending` for the new ETag replaces the old version's verdict."""
    earlier = report("verified", ("out/big.wav", "verified", "old-16"), ("out/gone.mp3", "verified", "e3"))
    whole = report("pending", ("out/big.wav", "pending", "new-16"))
    assert merged(earlier, whole, partial=False) == json.loads(whole)
    # A final verdict of the whole report replaces whatever was there.
    assert merged(report("failed", ("out/big.wav", "mismatch", "e1-16")),
                  report("verified", ("out/big.wav", "verified", "e1-16")), partial=False)["outcome"] == "verified"


def test_a_partial_result_never_turns_a_final_verdict_pending_and_a_job_without_outputs_keeps_its_outcome():
    earlier = report("failed", ("out/big.wav", "mismatch", "e1-16"), ("out/small.mp3", "verified", "e2-3"))
    assert merged(earlier, report("pending", ("out/big.wav", "pending", "e1-16")), partial=True)["objects"][0][
        "verdict"] == "mismatch"
    assert merged(earlier, report("pending", ("out/big.wav", "pending", "e9-16")), partial=True)["outcome"] == "pending"
    failed_job = report("failed-job", code="InternalError")
    assert merged(earlier, failed_job, partial=False) == json.loads(failed_job)


def test_a_final_entry_about_the_same_copy_keeps_the_version_the_move_checked():
    """Red team D4, the merge: a replay's entry names only the copy; the earlier one's `sourceEtag` stays."""
    moved = json.loads(report("verified", ("out/big.wav", "verified", "copy-3")))
    moved["objects"][0]["sourceEtag"] = "e1-4"
    replay = report("verified", ("out/big.wav", "verified", "copy-3"))
    for partial in (True, False):
        assert merged(json.dumps(moved).encode(), replay, partial)["objects"][0]["sourceEtag"] == "e1-4"
    # Another copy (a later version moved): nothing is carried.
    for partial in (True, False):
        assert "sourceEtag" not in merged(json.dumps(moved).encode(),
                                          report("verified", ("out/big.wav", "verified", "copy2-3")), partial)[
                                              "objects"][0]


# --- a replay that recognises an earlier move keeps the version it checked (red team D4) -------------------

@pytest.mark.slow
@pytest.mark.parametrize("replay", ["hash-callback", "media-callback"])
def test_a_late_pending_entry_never_replaces_a_final_one_after_a_replay_recognised_the_move(emulator, make_app,
                                                                                            posted, replay):
    """Red team D4. A: the media job's callback, its report read held 3 s. B: the FileHashCode callback verifies
    the output and moves it, copied in parts (the copy has another ETag; B's entry names the source's as
    `sourceEtag`). C: CI delivers B again (or the media job's callback again): C recognises the earlier move
    and writes the entry with the copy's ETag only. Then A's read returns and A writes `out/big.wav` `pending`
    for the source's ETag. Failed before the fix: C's entry had lost `sourceEtag`, so A's `pending` no longer
    matched the final entry and replaced it (report `pending` while the copy is tagged `verified`)."""
    data = b"voice track " * 200_000
    emulator.add_fault(method="GET", query="ci-process", status=400, code="InvalidArgument", times=None)
    emulator.put_object(BUCKET, "out/big.wav", data, part_size=600_000)  # 4 parts; the copy will have 3
    body = job_xml({"out/big.wav": md5(data)}, [])
    env = server_env(ACTION_VERIFIED="tag,move", MULTIPART_COPY_THRESHOLD_MB="2", COPY_PART_MB="1")
    slow = emulator.add_fault(method="GET", key=REPORT, delay=3.0, times=1)
    media = Invocation(make_app(**env), body)  # A
    media.start()
    wait_until(lambda: slow.hits == 1 and posted)
    hashed = posted.pop()
    app = make_app(**env)
    status, answer, _ = invoke(app, http_event(hashed.body, hashed.content_type))  # B
    obj = answer["jobs"][0]["objects"][0]
    assert (status, obj["verdict"], obj["actions"]) == (200, "verified", ["tagged", "moved:verified/out/big.wav"])
    copy_etag = emulator.object_info(BUCKET, "verified/out/big.wav")["etag"]
    (after_b,) = json.loads(emulator.object_bytes(BUCKET, REPORT))["objects"]
    assert after_b["etag"] == copy_etag and after_b["sourceEtag"] not in ("", copy_etag)  # as staged
    replayed = http_event(hashed.body, hashed.content_type) if replay == "hash-callback" else http_event(body)
    status, answer, _ = invoke(app, replayed)  # C
    assert (status, answer["jobs"][0]["objects"][0]["verdict"]) == (200, "verified")
    media.join(30)
    assert media.answer is not None and media.answer[1]["jobs"][0]["objects"][0]["verdict"] == "pending"

    report = json.loads(emulator.object_bytes(BUCKET, REPORT))
    (entry,) = report["objects"]
    assert (entry["verdict"], entry["etag"], report["outcome"]) == ("verified", copy_etag, "verified"), report
    assert emulator.tags(BUCKET, "verified/out/big.wav")[VERIFY_TAG] == "verified"
    assert report_exit_code(emulator) == 0
