"""Jobs as CI lists them for the reconcile tests: an output in COS, the job at CI's API, created when
the test says (the checkpoint moves by CreationTime), its callback delivered or lost."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import xmltodict

from tests.samples import BUCKET, job_xml

TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}
CHINA = timezone(timedelta(hours=8))
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"
STATE = ".ci-callback-verifier/"


def job_id(n: int) -> str:
    return f"j{n:031d}"


def output_key(n: int, output: int = 0) -> str:
    return f"out/{n}/{output}.mp3"


def seed_job(emulator: Any, n: int, minutes_ago: float, outputs: int = 2, state: str = "Success",
             queue: str | None = None, now: datetime | None = None, corrupt: bool = False) -> bytes:
    """The job's outputs in COS (written when the job ended) and the job at CI; returns its callback."""
    now = now or datetime.now(CHINA)
    created = now - timedelta(minutes=minutes_ago)
    ended = created + timedelta(seconds=20)
    md5s = {}
    for output in range(outputs):
        data = f"job {n} output {output}".encode()
        if state == "Success":
            emulator.put_object(BUCKET, output_key(n, output), data + (b"!" if corrupt else b""),
                                last_modified=ended.timestamp())
        md5s[output_key(n, output)] = hashlib.md5(data).hexdigest()
    times = (created.strftime(CI_TIME), (created + timedelta(seconds=1)).strftime(CI_TIME),
             ended.strftime(CI_TIME) if state == "Success" else "-")
    body = job_xml(md5s=md5s if state == "Success" else None, names=[], job_id=job_id(n), state=state, times=times)
    detail = xmltodict.parse(body)["Response"]["JobsDetail"]
    if queue:
        detail["QueueId"] = queue
    emulator.register_job(BUCKET, detail)
    return body


def requests_of(emulator: Any, method: str | None = None, prefix: str = "", query: str | None = None) -> list[Any]:
    return [r for r in emulator.requests if r.service == "cos" and (method is None or r.method == method)
            and r.key.startswith(prefix) and (query is None or query in r.query)]


def ci_lists(emulator: Any) -> list[Any]:
    return [r for r in emulator.requests if r.service == "ci" and r.key == "jobs" and r.bucket == BUCKET]
