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

from handlers.ci.confirm import job_place
from handlers.intake.callback import parse_callback
from handlers.intake.events import WORKER_KEY, worker_payload

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
    """The event with every callback it carries restamped (HTTP, worker and queue events)."""
    if "body" in event:
        if event.get("isBase64Encoded"):
            body = restamp(base64.b64decode(event["body"]).decode())
            return {**event, "body": base64.b64encode(body.encode()).decode()}
        return {**event, "body": restamp(event["body"])}
    if WORKER_KEY in event:
        return {**event, WORKER_KEY: {**event[WORKER_KEY], "body": restamp(event[WORKER_KEY]["body"])}}
    if "Records" in event:
        return {**event, "Records": [{**r, "CMQ": {**r["CMQ"], "msgBody": restamp(r["CMQ"]["msgBody"])}}
                                     for r in event["Records"]]}
    return event


def callback_bodies(event: dict) -> list[str]:
    """The callbacks an event carries, whatever trigger it stands for (none for a timer)."""
    if "body" in event:
        body = event["body"]
        return [base64.b64decode(body).decode() if event.get("isBase64Encoded") else body]
    if WORKER_KEY in event:
        return [event[WORKER_KEY]["body"]]
    return [record["CMQ"]["msgBody"] for record in event.get("Records", [])]


def ci_jobs(event: dict) -> list[tuple[str, dict]]:
    """(bucket, JobsDetail) for every job a sample callback reports: what CI's job API would
    answer for it, in the bucket the function asks (the input's, or for a job without input the
    one it wrote to), so the function's cross-check with CI finds each job as reported.
    A WorkflowFinish names jobs reported by the other samples, so it adds none."""
    jobs = []
    for body in callback_bodies(event):
        body = body.strip()
        doc = xmltodict.parse(body)["Response"] if body.startswith("<") else json.loads(body)
        details = doc.get("Response", doc).get("JobsDetail") or []
        details = details if isinstance(details, list) else [details]
        parsed = parse_callback(body.encode()).jobs_detail if details else ()
        for job, detail in zip(parsed, details, strict=True):
            jobs.append((job_place(job)[0], detail))
    return jobs


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
    # A workflow instance: its tasks name jobs the samples above reported (one succeeded, one failed).
    events["function-url-workflow-finish.json"] = function_url_event(
        workflow_finish([("VoiceSeparate", "Success", "j40644e92f8e311ecb90d0b03267ce0e5"),
                         ("VoiceSeparate", "Failed", "j70644e92f8e311ecb90d0b03267ce0e5")]), "application/xml")
    events["cmq-task-xml.json"] = cmq_event(task_xml)
    events["async-worker.json"] = worker_payload(task_xml.encode("utf-8"), "c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    events["timer.json"] = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z",
                            "Message": ""}
    for name, event in events.items():
        (HERE / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        print("wrote", (HERE / name).relative_to(ROOT))


def workflow_finish(tasks: list[tuple[str, str, str]]) -> str:
    """A WorkflowFinish callback (the shape of CI's documented example) naming these tasks."""
    items = "".join(f"<Tasks><Type>{kind}</Type><CreateTime>2022-08-09 14:54:18+0800</CreateTime>"
                    f"<EndTime>2022-08-09 14:54:39+0800</EndTime><State>{state}</State><JobId>{job_id}</JobId>"
                    f"<Name>{kind}_1581665960537</Name></Tasks>" for kind, state, job_id in tasks)
    state = "Success" if all(state == "Success" for _, state, _ in tasks) else "Failed"
    return ("<Response><EventName>WorkflowFinish</EventName><WorkflowExecution>"
            "<WorkflowId>web6ac56c1ef54dbfa44d7f4103203be9</WorkflowId><WorkflowName>workflow-test</WorkflowName>"
            f"<RunId>i166ee19017b011eda8a5525400c540df</RunId><State>{state}</State>"
            "<BucketId>test-123456789</BucketId><Object>input/demo.mp3</Object>"
            "<CreateTime>2022-08-09 14:54:17+0800</CreateTime>"
            "<CosHeaders><Key>Content-Type</Key><Value>audio/mp3</Value></CosHeaders>"
            f"{items}</WorkflowExecution></Response>\n")


def cmq_event(body: str) -> dict:
    """A CMQ trigger batch of one message, as SCF delivers a CMQ topic's messages."""
    return {"Records": [{"CMQ": {
        "type": "queue", "topicOwner": 1250000000, "topicName": "ci-callbacks",
        "subscriptionName": "ci-callback-verifier", "publishTime": "2022-07-01T02:12:33.000Z",
        "msgId": "123345346", "requestId": "123345340", "msgBody": body, "msgTag": ""}}]}
