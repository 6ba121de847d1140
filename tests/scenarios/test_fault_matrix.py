"""Every COS operation the function performs × every way it can fail.

For each pair: the invariants hold right after the faulty delivery (no bytes lost, nothing
marked verified whose bytes differ, nothing quarantined without a content hash), and one
clean redelivery brings every object to its final place.
"""
from __future__ import annotations

import hashlib

import pytest

from localcloud.soak import Output, placement_problems, safety_problems
from tests.conftest import http_event, invoke
from tests.samples import BUCKET, job_xml

pytestmark = pytest.mark.slow  # every COS operation times every failure, each redelivered

JOB = "j0000000000000000000000000000001"
PLAIN = b"plain upload " * 500
PARTS = bytes(range(256)) * 1024  # uploaded in parts: only its content can verify it
CORRUPT = b"not what CI wrote " * 300
OUTPUTS = [
    Output("out/plain.mp3", PLAIN, hashlib.md5(PLAIN).hexdigest()),
    Output("out/parts.wav", PARTS, hashlib.md5(PARTS).hexdigest()),
    Output("out/corrupt.mp3", CORRUPT, hashlib.md5(b"what CI wrote").hexdigest()),
]
ENV = {"ACTION_VERIFIED": "tag,move", "ACTION_FAILED": "tag,move", "COS_TIMEOUT_SECONDS": "1"}

OPERATIONS = {
    "HEAD": dict(method="HEAD"),
    "GET content": dict(method="GET", query="!"),
    "GET tagging": dict(method="GET", query="tagging"),
    "PUT tagging": dict(method="PUT", query="tagging"),
    "copy": dict(method="PUT", query="!"),
    "DELETE": dict(method="DELETE"),
}
FAILURES = {
    "503 once": dict(status=503, times=1),
    "503 always": dict(status=503, times=None),
    "delay past the timeout": dict(delay=1.4, times=1),
    "connection reset": dict(reset=True, times=1),
    "truncated body": dict(truncate=100, times=1),
    "truncated body always": dict(truncate=100, times=None),
    "200 with an error body": dict(copy_error_body=True, times=1),
    "412": dict(status=412, code="PreconditionFailed", times=1),
}
ONLY = {"truncated body": {"GET content"}, "truncated body always": {"GET content"},
        "200 with an error body": {"copy"}, "412": {"copy"}}
CASES = [(op, failure) for op in OPERATIONS for failure in FAILURES if op in ONLY.get(failure, {op})]


def callback() -> dict:
    return http_event(job_xml(md5s={o.key: o.reported_md5 for o in OUTPUTS}, names=[]))


@pytest.mark.parametrize("operation, failure", CASES, ids=[f"{o}-{f}" for o, f in CASES])
def test_fault(emulator, make_app, operation, failure):
    emulator.put_object(BUCKET, "out/plain.mp3", PLAIN)
    emulator.put_object(BUCKET, "out/parts.wav", PARTS, part_size=64 * 1024)
    emulator.put_object(BUCKET, "out/corrupt.mp3", CORRUPT)
    app = make_app(**ENV)
    fault = emulator.add_fault(**OPERATIONS[operation], **FAILURES[failure])

    status, body, headers = invoke(app, callback(), {"time_limit_in_ms": 6000})
    assert fault.hits >= 1, "the fault never fired: the matrix would prove nothing"
    assert safety_problems(emulator, BUCKET, OUTPUTS) == []
    assert status in (200, 503)
    if status == 503:
        assert headers["Retry-After"]
    for obj in body["jobs"][0]["objects"]:
        assert obj["verdict"] != "mismatch" or obj["method"] == "content"
        assert obj["verdict"] != "verified" or obj["key"] != "out/corrupt.mp3"

    emulator.clear_faults()
    status, body, _ = invoke(app, callback())
    assert status == 200, body
    assert placement_problems(emulator, BUCKET, JOB, OUTPUTS) == []
    assert [o["verdict"] for o in body["jobs"][0]["objects"]] == ["verified", "verified", "mismatch"]
