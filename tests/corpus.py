"""The corpus of payloads Tencent publishes (tests/fixtures/ci/), and how tests use it.

A published callback names MD5s of bytes nobody has; `seeded` swaps each for the MD5 of bytes
the test writes, and nothing else, so what the function sees is the published payload.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xmltodict

from handlers.ci.confirm import job_place
from handlers.intake.callback import all_outputs, parse_callback
from handlers.intake.models import Callback
from localcloud.cos.errors import CosError

CORPUS = Path(__file__).parent / "fixtures" / "ci"
CALLBACK_KINDS = ("TaskFinish", "WorkflowFinish")
RESPONSE_KINDS = ("DescribeMediaJob", "DescribeMediaJobs", "CreateMediaJobs")


@dataclass(frozen=True)
class Payload:
    file: str
    kind: str
    job_type: str | None
    format: str
    source: str

    @property
    def body(self) -> bytes:
        return (CORPUS / self.file).read_bytes()


def entries(*kinds: str) -> list[Payload]:
    index = json.loads((CORPUS / "index.json").read_text())
    return [Payload(e["file"], e["kind"], e.get("jobType"), e["format"], e["source"])
            for e in index if not kinds or e["kind"] in kinds]


def content_for(payload: Payload, key: str) -> bytes:
    return f"{payload.file}|{key}".encode()


def seeded(payload: Payload) -> bytes:
    """The payload with every Md5Info MD5 replaced by the MD5 of the bytes `seed` writes."""
    text = payload.body.decode("utf-8-sig")
    for job in parse_callback(payload.body).jobs_detail:
        for target in all_outputs(job):
            if target.expected_md5:
                new = hashlib.md5(content_for(payload, target.key)).hexdigest()
                text = re.sub(target.expected_md5, new, text, flags=re.IGNORECASE)
    return text.encode()


def seed(emulator: Any, payload: Payload, body: bytes) -> Callback:
    """Create the buckets the callback names, write every output it reports, and make CI's job
    API know each job (in the bucket it ran in) exactly as the callback describes it."""
    callback = parse_callback(body)
    details = _job_details(body)
    for job, detail in zip(callback.jobs_detail, details, strict=True):
        for target in all_outputs(job):
            if target.placed:
                _bucket(emulator, target.bucket, target.region)
                emulator.put_object(target.bucket, target.key, content_for(payload, target.key))
        try:
            bucket, region = job_place(job)
        except ValueError:
            continue  # a job that names no bucket at all causes no look-up
        _bucket(emulator, bucket, region)
        emulator.register_job(bucket, detail)
    return callback


def _bucket(emulator: Any, bucket: str, region: str) -> None:
    try:
        emulator.create_bucket(bucket, region=region)
    except CosError:
        pass  # it exists already


def _job_details(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8-sig").strip()
    doc = xmltodict.parse(text)["Response"] if text.startswith("<") else json.loads(text)
    doc = doc.get("Response", doc)
    details = doc.get("JobsDetail") or []
    return details if isinstance(details, list) else [details]
