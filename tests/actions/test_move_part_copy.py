"""A multipart copy (Upload Part - Copy) that answers 200 with an error body fails the move; the source stays."""
from __future__ import annotations

import pytest

from tests.conftest import http_event, invoke, md5
from tests.samples import BUCKET, job_xml

DATA = bytes(range(256)) * (10 * 1024)  # 2.5 MiB: three 1 MiB parts
LARGE = {"ACTION_VERIFIED": "move", "MULTIPART_COPY_THRESHOLD_MB": "2", "COPY_PART_MB": "1"}


def event() -> dict:
    return http_event(job_xml(md5s={"out/big": md5(DATA)}, names=["out/big"]))


@pytest.mark.slow
def test_a_part_copy_answering_200_with_an_error_body_fails_the_move_and_keeps_the_source(emulator, make_app):
    emulator.put_object(BUCKET, "out/big", DATA, part_size=1 << 20)
    emulator.add_fault(method="PUT", key="verified/out/big", query="partNumber", copy_error_body=True, times=None)
    status, body, _ = invoke(make_app(**LARGE), event())
    obj = body["jobs"][0]["objects"][0]
    assert status == 503 and obj["verdict"] == "verified" and not any(a.startswith("moved") for a in obj["actions"])
    assert "move failed" in obj["reason"] and "error body" in obj["reason"]
    assert emulator.object_bytes(BUCKET, "out/big") == DATA and emulator.object_info(BUCKET, "verified/out/big") is None
    aborts = [r for r in emulator.requests if r.method == "DELETE" and "uploadId" in r.query]
    assert aborts and all(r.status == 204 for r in aborts)  # no upload is left behind


def test_a_single_part_copy_error_is_retried_and_the_move_completes(emulator, make_app):
    emulator.put_object(BUCKET, "out/big", DATA, part_size=1 << 20)
    fault = emulator.add_fault(method="PUT", key="verified/out/big", query="partNumber", copy_error_body=True)
    status, body, _ = invoke(make_app(**LARGE), event())
    assert status == 200 and fault.hits == 1
    assert body["jobs"][0]["objects"][0]["actions"] == ["moved:verified/out/big"]
    assert emulator.object_bytes(BUCKET, "verified/out/big") == DATA and emulator.object_info(BUCKET, "out/big") is None
