"""The sample events and sample objects in events/, and how they are rebuilt.

    python -m localcloud samples

The documented examples (tests/fixtures/) report MD5s of Tencent's own files; the samples
report the MD5s of the objects in events/objects/ instead, so the demo verifies for real.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import xmltodict

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "events"
FIXTURES = ROOT / "tests" / "fixtures"
OBJECTS = HERE / "objects"
DOC_MD5 = {"output/audio.mp3": "3b883c0462ba845acdf3eb7e30db1a1c",
           "output/backgroud.mp3": "62de6bb513d6105eeeb1a6ab0077cb5a"}
FUNCTION_URL_HOST = "1250000000-abcdefgh-ap-chongqing.scf.tencentcs.com"
# The demo's CALLBACK_TOKEN: CI calls the callback URL `https://<function-url>/?token=demo-token`.
DEMO_TOKEN = "demo-token"


def md5_of(key: str) -> str:
    return hashlib.md5(sample_bytes(next(e for e in manifest() if e["key"] == key))).hexdigest()


def sample_bytes(entry: dict) -> bytes:
    """Bytes of a sample object: a shipped file, or a generated one named in the manifest."""
    if "file" in entry:
        return (OBJECTS / entry["file"]).read_bytes()
    return generated(entry["generate"]["seed"], entry["generate"]["size"])


def generated(seed: str, size: int) -> bytes:
    """Deterministic filler (SHA-256 in counter mode), the same on every machine."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# Only values that are dates: `StartTime` also names a float inside MediaInfo.Format.
_TIMES = re.compile(r'(<(?:Creation|Start|End)Time>|"(?:Creation|Start|End)Time":\s*")\d{4}-\d\d-\d\d[T ][^<"]*')


def restamp(body: str, end: datetime | None = None) -> str:
    """Move a sample job's times to now, as if CI had just finished it.

    The function calls an object rewritten more than 60 s after its job ended `superseded`;
    objects uploaded today would be exactly that next to a job that ended in 2022.
    """
    end = end or datetime.now(timezone(timedelta(hours=8)))
    return _TIMES.sub(lambda m: m.group(1) + end.strftime("%Y-%m-%dT%H:%M:%S%z"), body)


def restamp_event(event: dict) -> dict:
    if event.get("isBase64Encoded"):
        body = restamp(base64.b64decode(event["body"]).decode())
        return {**event, "body": base64.b64encode(body.encode()).decode()}
    return {**event, "body": restamp(event["body"])}


def event_body(event: dict) -> str:
    body = event["body"]
    return base64.b64decode(body).decode() if event.get("isBase64Encoded") else body


def ci_jobs(event: dict) -> list[tuple[str, dict]]:
    """(input bucket, JobsDetail) for every job a sample callback reports: what CI's job API
    would answer for it, so the function's cross-check with CI finds each job as reported."""
    body = event_body(event).strip()
    if body.startswith("<"):
        details = xmltodict.parse(body)["Response"]["JobsDetail"]
    else:
        doc = json.loads(body)
        details = doc.get("Response", doc)["JobsDetail"]
    details = details if isinstance(details, list) else [details]
    return [(detail["Input"]["BucketId"], detail) for detail in details]


def manifest() -> list[dict]:
    return json.loads((OBJECTS / "manifest.json").read_text())


def function_url_event(body: str, content_type: str, query: dict | None = None) -> dict:
    return {
        "body": body,
        "headers": {"content-type": content_type, "host": FUNCTION_URL_HOST,
                    "user-agent": "Tencent-CI-Callback", "content-length": str(len(body.encode()))},
        "httpMethod": "POST",
        "path": "/",
        "queryString": {"token": DEMO_TOKEN} if query is None else query,
    }


def api_gateway_event(body: str, content_type: str) -> dict:
    encoded = base64.b64encode(body.encode()).decode()
    return {
        "requestContext": {"serviceId": "service-abcdefgh", "path": "/ci/callback", "httpMethod": "POST",
                           "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "sourceIp": "10.0.2.14",
                           "stage": "release"},
        "headers": {"Content-Type": content_type, "Host": "service-abcdefgh-1250000000.cq.apigw.tencentcs.com"},
        "body": encoded,
        "isBase64Encoded": True,
        "pathParameters": {},
        "queryStringParameters": {"token": DEMO_TOKEN},
        "headerParameters": {},
        "stageVariables": {"stage": "release"},
        "path": "/ci/callback",
        "queryString": {"token": DEMO_TOKEN},
        "httpMethod": "POST",
    }


def documented(name: str, md5s: dict[str, str]) -> str:
    text = (FIXTURES / name).read_text()
    for key, doc_md5 in DOC_MD5.items():
        text = text.replace(doc_md5, md5s[key])
    return text


def rekey(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def build_events() -> None:
    ours = {key: md5_of(key) for key in DOC_MD5}
    task_xml = documented("voice_separate_task.xml", ours)
    events = {
        "function-url-task-xml.json": function_url_event(task_xml, "application/xml"),
        "function-url-workflow-xml.json": function_url_event(
            documented("voice_separate_workflow.xml", ours), "application/xml"),
        "function-url-workflow-json.json": function_url_event(
            documented("voice_separate_workflow.json", ours), "application/json"),
        "api-gateway-task-xml.json": api_gateway_event(task_xml, "application/xml"),
    }
    # A wrong MD5: the background track in COS holds other bytes than the ones CI reports.
    mismatch = rekey(task_xml, {"output/": "output/mismatch/", "j40644e92f8e311ecb90d0b03267ce0e5":
                                "j50644e92f8e311ecb90d0b03267ce0e5"})
    events["function-url-mismatch.json"] = function_url_event(mismatch, "application/xml")
    # A multipart upload: its ETag is `<hash>-<parts>`, so only the content can verify it.
    multipart = rekey(task_xml, {"output/audio.mp3": "output/multipart/audio.mp3",
                                 "output/backgroud.mp3": "output/multipart/backgroud.mp3",
                                 "j40644e92f8e311ecb90d0b03267ce0e5": "j60644e92f8e311ecb90d0b03267ce0e5"})
    for key in ("output/multipart/audio.mp3", "output/multipart/backgroud.mp3"):
        plain = key.replace("multipart/", "")
        multipart = multipart.replace(md5_of(plain), md5_of(key))
    events["function-url-multipart.json"] = function_url_event(multipart, "application/xml")
    failed = (FIXTURES / "voice_separate_task.xml").read_text()
    failed = failed.replace("<Code>Success</Code>", "<Code>InvalidInput</Code>")
    failed = failed.replace("<Message/>", "<Message>The input file has no audio stream.</Message>")
    failed = failed.replace("<State>Success</State>", "<State>Failed</State>")
    failed = rekey(failed, {"j40644e92f8e311ecb90d0b03267ce0e5": "j70644e92f8e311ecb90d0b03267ce0e5"})
    events["function-url-failed-job.json"] = function_url_event(failed, "application/xml")
    for name, event in events.items():
        (HERE / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        print("wrote", (HERE / name).relative_to(ROOT))
