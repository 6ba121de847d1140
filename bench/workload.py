"""What every benchmark works on: the emulator's credentials, callbacks with N outputs,
the objects they name, and the function configured against the emulator."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import xmltodict

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
BUCKET = "bench-1250000000"
REGION = "ap-chongqing"
SECRET_ID = "AKIDbench00000000000000000000000"
SECRET_KEY = "bench-secret-key-000000000000000"
TOKEN = "bench-session-token"
CALLBACK_TOKEN = "bench-callback-token"
CONTEXT = {"request_id": "bench", "time_limit_in_ms": 900_000}


def function_env(endpoint: str, **overrides: str) -> dict[str, str]:
    """The function's settings against the emulator at `endpoint`. The CI cross-check is off
    unless asked for: it adds one round trip before any object is looked at (measured apart)."""
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": endpoint, "CALLBACK_TOKEN": CALLBACK_TOKEN,
           "ALLOWED_BUCKETS": BUCKET, "VERIFY_WITH_CI": "false"}
    env.update(overrides)
    return env


def object_body(index: int, size: int = 1024) -> bytes:
    seed = hashlib.sha256(f"bench object {index}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def output_keys(count: int, prefix: str = "output/bench") -> list[str]:
    return [f"{prefix}/{i:04d}.mp3" for i in range(count)]


def callback_xml(md5s: Mapping[str, str], job_id: str = "j" + "0" * 31 + "1") -> bytes:
    """A VoiceSeparate TaskFinish callback in CI's XML form, reporting `md5s` ({key: md5})."""
    now = datetime.now(timezone(timedelta(hours=8)))
    created, started, ended = ((now - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S%z") for s in (6, 5, 0))
    md5_info = "".join(f"<Md5Info><Md5>{md5}</Md5><ObjectName>{key}</ObjectName></Md5Info>"
                       for key, md5 in md5s.items())
    names = "".join(f"<ObjectName>{key}</ObjectName>" for key in md5s)
    return f"""<Response><EventName>TaskFinish</EventName><JobsDetail>
<Code>Success</Code><Message></Message><JobId>{job_id}</JobId><State>Success</State><Tag>VoiceSeparate</Tag>
<CreationTime>{created}</CreationTime><StartTime>{started}</StartTime><EndTime>{ended}</EndTime>
<Input><BucketId>{BUCKET}</BucketId><Object>input/bench.mp3</Object><Region>{REGION}</Region></Input>
<Operation><MediaResult><OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region>
{md5_info}{names}<ObjectPrefix></ObjectPrefix></OutputFile></MediaResult></Operation>
</JobsDetail></Response>""".encode()


def jobs_detail(body: bytes) -> dict[str, Any]:
    """The job as the emulator's CI API serves it back (what a test registers)."""
    return xmltodict.parse(body)["Response"]["JobsDetail"]


def http_event(body: bytes) -> dict[str, Any]:
    return {"body": body.decode(), "headers": {"Content-Type": "application/xml"}, "httpMethod": "POST",
            "path": "/", "queryString": {"token": CALLBACK_TOKEN}}


def response_body(result: Mapping[str, Any]) -> dict[str, Any]:
    if result.get("statusCode") != 200:
        raise RuntimeError(f"the function answered {result.get('statusCode')}: {result.get('body')}")
    return json.loads(result["body"])


def verdicts(result: Mapping[str, Any]) -> list[str]:
    return [o["verdict"] for job in response_body(result)["jobs"] for o in job["objects"]]


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The function logs a JSON line per object to stdout; it still formats and writes every
    line (that is part of its cost), but not onto the benchmark's table."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield
