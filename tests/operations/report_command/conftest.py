"""The report command's tests share a bucket seeded by real callbacks through the function, and the stray
objects someone may put under the reports prefix; `run` calls the command as `dev.py report` does."""
from __future__ import annotations

import io
import json

import pytest

from handlers.operations.report_command.command import main
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

REPORTS = "ci-reports/"
GOOD, BAD, GONE = "j00000000000000000000000000000a1", "j00000000000000000000000000000b2", \
    "j00000000000000000000000000000c3"


def run(emulator, *args: str, **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environment = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                   "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint, **env}
    code = main(["--bucket", BUCKET, "--region", REGION, *args], environment, out, err)
    return code, out.getvalue(), err.getvalue()


def callback(app, job_id: str, outputs: dict[str, bytes], claimed: dict[str, bytes] | None = None) -> dict:
    md5s = {key: md5(data) for key, data in (claimed or outputs).items()}
    status, body, _ = invoke(app, http_event(job_xml(md5s, list(md5s), job_id=job_id)))
    assert status == 200, body
    return body


@pytest.fixture
def seeded(emulator, make_app):
    """Three jobs: one verified (two outputs), one whose output mismatches, one whose output is missing."""
    app = make_app(REPORT_PREFIX=REPORTS)
    emulator.put_object(BUCKET, "out/good/a.mp3", b"a" * 100)
    emulator.put_object(BUCKET, "out/good/b.mp3", b"b" * 100)
    callback(app, GOOD, {"out/good/a.mp3": b"a" * 100, "out/good/b.mp3": b"b" * 100})
    emulator.put_object(BUCKET, "out/bad/a.mp3", b"not what CI wrote")
    callback(app, BAD, {"out/bad/a.mp3": b"not what CI wrote"}, claimed={"out/bad/a.mp3": b"what CI wrote"})
    callback(app, GONE, {"out/gone/a.mp3": b"never uploaded"})
    return app


STRAY = {  # what may sit under the prefix beside the function's reports, and why it is no report
    f"{REPORTS}notes.json": (b"these are not the reports you are looking for", "not JSON"),
    f"{REPORTS}bad-objects.json": (json.dumps({"jobId": "j1", "outcome": "failed", "objects": "out/x.mp3"}).encode(),
                                   "objects is not a list of objects with a key and a verdict"),
    f"{REPORTS}numbers.json": (json.dumps({"jobId": "j2", "outcome": "failed", "objects": [1, 2]}).encode(),
                               "objects is not a list of objects with a key and a verdict"),
    f"{REPORTS}list.json": (b"[]", "not a JSON object"),
}


@pytest.fixture
def strays(emulator, seeded):
    for key, (body, _) in STRAY.items():
        emulator.put_object(BUCKET, key, body)
    return seeded

