"""The README's first command: every sample event against a local COS, end to end.

Starts the COS emulator, uploads the sample outputs from events/objects/ through the real
COS SDK (the large ones as multipart uploads), runs each sample event through
`index.main_handler` and prints what the function decided and the tags it left behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from qcloud_cos import CosConfig, CosS3Client

from localcloud.cos import CosEmulator
from localcloud.runner import ROOT, load_handler, local_context
from localcloud.samples import DEMO_TOKEN, ci_jobs, restamp_event, sample_bytes
from localcloud.samples import manifest as sample_manifest
from localcloud.webhook import WebhookReceiver

EVENTS = ROOT / "events"
OBJECTS = EVENTS / "objects"
SECRET_ID, SECRET_KEY, TOKEN = "AKIDdemo0000000000000000000000000", "demo-secret-key", "demo-session-token"
# A Standard Webhooks secret for the demo's notifications (whsec_ and the base64 of 32 bytes).
NOTIFY_SECRET = "whsec_ZGVtby1ub3RpZnktc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="
MISMATCH_SAMPLE = "function-url-mismatch.json"
SAMPLES = [
    ("function-url-task-xml.json", "documented case 1: task callback, XML"),
    ("function-url-workflow-xml.json", "documented case 2: workflow callback, XML"),
    ("function-url-workflow-json.json", "documented case 3: workflow callback, JSON"),
    ("api-gateway-task-xml.json", "API Gateway event, base64 body"),
    ("function-url-mismatch.json", "wrong MD5 for one track"),
    ("function-url-multipart.json", "multipart outputs: ETag is not an MD5"),
    ("function-url-failed-job.json", "a job that failed in CI"),
    ("function-url-workflow-finish.json", "WorkflowFinish: each task's job read back from CI"),
    ("cmq-task-xml.json", "a callback delivered through a CMQ topic"),
    ("async-worker.json", "the asynchronous worker's payload (DISPATCH=async)"),
    ("timer.json", "the reconciliation sweep's timer tick"),
]


def upload_samples(emulator: CosEmulator) -> list[dict]:
    manifest = sample_manifest()
    clients: dict[str, CosS3Client] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for entry in manifest:
            bucket, region = entry["bucket"], entry["region"]
            if region not in clients:
                emulator.create_bucket(bucket, region=region)
                config = CosConfig(Region=region, SecretId=SECRET_ID, SecretKey=SECRET_KEY, Token=TOKEN,
                                   Scheme="http", IP=emulator.host, Port=emulator.port)
                clients[region] = CosS3Client(config, retry=0)
            local = Path(scratch) / "object"
            local.write_bytes(sample_bytes(entry))
            clients[region].upload_file(Bucket=bucket, Key=entry["key"], LocalFilePath=str(local),
                                        PartSize=entry.get("partSizeMiB", 64), MAXThread=2)
    return manifest


def main() -> int:
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emulator, \
            WebhookReceiver(secret=NOTIFY_SECRET) as receiver:
        print(f"COS emulator at {emulator.endpoint}, webhook receiver at {receiver.url()}")
        manifest = upload_samples(emulator)
        print(f"uploaded {len(manifest)} sample objects from {OBJECTS.relative_to(ROOT)}/\n")
        os.environ.update({"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                           "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint,
                           "CALLBACK_TOKEN": DEMO_TOKEN, "VERIFY_WITH_CI": "true",
                           "ALLOWED_BUCKETS": ",".join(sorted({entry["bucket"] for entry in manifest})),
                           "DEFAULT_REGION": "ap-chongqing",
                           "NOTIFY_URL": receiver.url(), "NOTIFY_SECRET": NOTIFY_SECRET,
                           # mismatches and failed jobs are WARNING lines; the tables below show them
                           "LOG_LEVEL": os.environ.get("LOG_LEVEL", "ERROR")})
        handler = load_handler()
        rows = []
        for name, what in SAMPLES:
            event = restamp_event(json.loads((EVENTS / name).read_text()))
            for bucket, detail in ci_jobs(event):  # CI's job API knows every job it called back about
                emulator.register_job(bucket, detail)
            heard = len(receiver.requests)
            result = handler(event, local_context())
            answer, jobs = describe(result)
            print(f"events/{name}  ({what})  ->  {answer}")
            for job in jobs:
                detail = f"  {job.get('code', '')} {job.get('message', '')}".rstrip()
                print(f"  job {job['jobId']}  {job['state']}  outcome={job['outcome']}{detail}")
                for obj in job["objects"]:
                    rows.append(obj)
                    print(f"    {obj['key']:<34} {obj['verdict']:<12} {obj['method']:<8} "
                          f"{','.join(obj['actions']) or '-'}")
            show_notifications(receiver.requests[heard:], full=name == MISMATCH_SAMPLE)
            print()
        print("tags now on the sample objects:")
        for entry in manifest:
            tags = emulator.tags(entry["bucket"], entry["key"]) or {}
            shown = ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "(none)"
            print(f"  {entry['key']:<34} {shown}")
    return 0


def show_notifications(messages: list, full: bool) -> None:
    """What the function sent to NOTIFY_URL, as the receiver checked it; in full for the mismatch sample."""
    for message in messages:
        event = message.json()
        print(f"  notification {event['type']}  webhook-id {message.headers['webhook-id']}  "
              f"signature {message.signature}")
        if full:
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
                print(f"    {name}: {message.headers[name]}")
            print("    " + json.dumps(event, ensure_ascii=False, indent=2).replace("\n", "\n    "))


def describe(result: dict) -> tuple[str, list[dict]]:
    """A one-line answer and the job entries, for any kind of invocation's result."""
    if "statusCode" in result:
        return f"HTTP {result['statusCode']}", json.loads(result["body"]).get("jobs", [])
    if "sweep" in result:
        sweep = result["sweep"]
        if isinstance(sweep, str):
            return sweep, []
        return (f"listed {sweep['listed']} jobs, {sweep['alreadyDone']} already done, "
                f"{sweep['checked']} checked"), []
    if "messages" in result:
        jobs = [job for message in result["messages"] for job in message.get("jobs", [])]
        return f"{len(result['messages'])} message(s) processed", jobs
    return ("refused: " + result["refused"]) if "refused" in result else "processed", result.get("jobs", [])
