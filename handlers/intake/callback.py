"""Parse a CI callback body (XML or JSON) into a `Callback`, and list the objects a job wrote."""
from __future__ import annotations

import json
import re
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

from handlers.intake.models import Callback, Job, OutputFile, OutputObject, WorkflowExecution
from handlers.intake.nodes import MalformedCallback, build, object_key

MAX_NESTING = 64  # CI's deepest documented element is about 10 levels down
MAX_JOBS = 100  # per callback: a TaskFinish reports one job, a workflow a few dozen tasks
# COS names go into request URLs and Host headers: nothing else may pass.
_BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?-[0-9]{1,20}")
_REGION = re.compile(r"[a-z]{2,10}(?:-[a-z0-9]{1,20}){1,3}")
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # it goes into CI's URL and into the ci-job tag

__all__ = ["MalformedCallback", "all_outputs", "body_format", "output_objects", "parse_callback", "unplaced_reason"]


def body_format(body: bytes) -> str:
    """'xml' or 'json', decided by the first non-blank character: Content-Type is often wrong."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        return "json"
    if not head:
        raise MalformedCallback("the body is empty")
    raise MalformedCallback("the body is neither XML nor JSON (it must start with '<' or '{')")


def parse_callback(body: bytes) -> Callback:
    kind = body_format(body)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedCallback(f"the body is not valid UTF-8 (byte {exc.start})") from None
    tree = _parse_xml(text) if kind == "xml" else _parse_json(text)
    callback: Callback = build(Callback, tree, "Response")
    if callback.workflow_execution is not None and not callback.jobs_detail:
        _check_workflow(callback.workflow_execution, "Response.WorkflowExecution")
        return callback
    if not callback.jobs_detail:
        raise MalformedCallback("Response.JobsDetail is missing: no job to check")
    if len(callback.jobs_detail) > MAX_JOBS:
        raise MalformedCallback(f"Response.JobsDetail lists {len(callback.jobs_detail)} jobs; a callback reports "
                                f"one (at most {MAX_JOBS} are read)")
    jobs: dict[str, Job] = {}
    for i, job in enumerate(callback.jobs_detail):
        _check_names(job, f"Response.JobsDetail[{i}]")
        all_outputs(job)  # refuse contradictory output lists now, before any request
        if jobs.setdefault(job.job_id, job) != job:
            raise MalformedCallback(f"Response.JobsDetail[{i}]: job {job.job_id} is described twice, differently")
    return Callback(callback.event_name, tuple(jobs.values()), callback.workflow_execution)


def _check_workflow(execution: WorkflowExecution, path: str) -> None:
    if execution.bucket_id and not _BUCKET.fullmatch(execution.bucket_id):
        raise MalformedCallback(f"{path}.BucketId: {execution.bucket_id[:64]!r} is not a bucket name like "
                                "examplebucket-1250000000")
    if len(execution.tasks) > MAX_JOBS:
        raise MalformedCallback(f"{path}.Tasks lists {len(execution.tasks)} tasks; at most {MAX_JOBS} are read")
    for i, task in enumerate(execution.tasks):
        if task.job_id and not _JOB_ID.fullmatch(task.job_id):
            raise MalformedCallback(f"{path}.Tasks[{i}].JobId: {task.job_id[:64]!r} is not a CI job id")


def _check_names(job: Job, path: str) -> None:
    if not _JOB_ID.fullmatch(job.job_id):
        raise MalformedCallback(f"{path}.JobId: {job.job_id[:64]!r} is not a CI job id (letters, digits, - and _)")
    places = []  # (where, bucket, region)
    if job.input is not None:
        places.append(("Input", job.input.bucket_id, job.input.region))
    operation = job.operation
    if operation is not None and operation.output is not None:
        places.append(("Operation.Output", operation.output.bucket, operation.output.region))
    if operation is not None and operation.media_result is not None:
        places += [(f"Operation.MediaResult.OutputFile[{i}]", output.bucket, output.region)
                   for i, output in enumerate(operation.media_result.output_file)]
    if operation is not None and operation.media_result is not None:
        for i, output in enumerate(operation.media_result.output_file):
            for j, info in enumerate(output.md5_info):
                if info.md5 and not info.object_name:  # an MD5 for no object: a contradiction, not a gap
                    raise MalformedCallback(f"{path}.Operation.MediaResult.OutputFile[{i}].Md5Info[{j}].ObjectName "
                                            "is required")
    for where, bucket, region in places:
        bucket_field = "Input.BucketId" if where == "Input" else f"{where}.Bucket"
        if bucket and not _BUCKET.fullmatch(bucket):
            raise MalformedCallback(f"{path}.{bucket_field}: {bucket[:64]!r} is not a bucket name like "
                                    "examplebucket-1250000000")
        if region and not _REGION.fullmatch(region):
            raise MalformedCallback(f"{path}.{where}.Region: {region[:64]!r} is not a region like ap-chongqing")


def _parse_xml(text: str) -> Any:
    # Entity declarations are how XML bombs and external-entity reads start; CI never sends them.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MalformedCallback("DOCTYPE and ENTITY declarations are not accepted")
    try:
        doc = xmltodict.parse(text, disable_entities=True, postprocessor=_bounded_nesting)
    except ExpatError as exc:
        raise MalformedCallback(f"the body is not well-formed XML: {exc}") from None
    if "Response" not in doc:
        raise MalformedCallback(f"the XML root element is <{next(iter(doc))}>, expected <Response>")
    return doc["Response"]


def _parse_json(text: str) -> Any:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedCallback(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedCallback("the JSON body must be an object")
    _check_json_nesting(doc)
    if set(doc) == {"Response"}:
        doc = doc["Response"]
    return doc


def _bounded_nesting(path: list[Any], key: str, value: Any) -> tuple[str, Any]:
    """xmltodict calls this as each element closes, with the element's ancestors in `path`."""
    if len(path) > MAX_NESTING:
        raise MalformedCallback(f"the XML nests elements more than {MAX_NESTING} levels deep")
    return key, value


def _check_json_nesting(doc: Any) -> None:
    level, depth = [doc], 1  # level by level, not recursion: the depth is what is being checked
    while level:
        if depth > MAX_NESTING:
            raise MalformedCallback(f"the JSON nests objects and arrays more than {MAX_NESTING} levels deep")
        below = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, (dict, list)):
                    below.append(child)
        level, depth = below, depth + 1


def output_objects(job: Job) -> tuple[OutputObject, ...]:
    """Every object the job reports writing whose bucket and region are known, each with
    CI's MD5 when it gave one (see `all_outputs`)."""
    return tuple(target for target in all_outputs(job) if target.placed)


def all_outputs(job: Job) -> tuple[OutputObject, ...]:
    """Every object the job reports writing, each with CI's MD5 when it gave one; an object
    whose place no node of the job names has an empty bucket or region (`placed` is False).

    `Md5Info.ObjectName` is a full key; `OutputFile.ObjectName` entries are relative to
    `ObjectPrefix` when it is set (Segment, Snapshot) and full keys when it is empty. Several
    entries may describe one object: they merge per key, and a missing MD5 never conflicts
    with a present one (two different MD5s do).

    An OutputFile's bucket and region come from the first of these that names them: the
    OutputFile itself, the job's `Operation.Output`, the job's `Input` (older callbacks send
    `<Bucket/>`; a job writes where it runs unless its Output says otherwise). A region is
    taken only from a node naming the same bucket, or no bucket at all.
    """
    result = job.operation.media_result if job.operation else None
    if result is None:
        return ()
    entries = []  # (bucket, region, key, md5) in the order CI lists them
    for output in result.output_file:
        bucket, region = _place(job, output)
        for info in output.md5_info:
            if info.object_name:  # an MD5 naming no object verifies nothing
                entries.append((bucket, region, info.object_name, info.md5 or None))
        for name in output.object_name:
            key = _joined_key(output.object_prefix, name, f"job {job.job_id}: OutputFile.ObjectName")
            entries.append((bucket, region, key, None))
    return _merged(job.job_id, entries)


def _merged(job_id: str, entries: list[tuple[str, str, str, str | None]]) -> tuple[OutputObject, ...]:
    """One object per (bucket, key), whatever the order of the entries: an MD5 fills a gap but
    never overrides another MD5, a region fills a gap but never overrides another region, and an
    entry naming no bucket belongs to the object of that key that has one."""
    objects: dict[tuple[str, str], OutputObject] = {}
    placed_keys = {key for bucket, _, key, _ in entries if bucket}
    for bucket, region, key, md5 in entries:
        if not bucket and key in placed_keys:
            owners = [o for (b, k), o in objects.items() if k == key and b]
            if not owners:  # its placed namesake comes later: merge it when it does
                entries.append((bucket, region, key, md5))
                continue
            for owner in owners:
                objects[(owner.bucket, key)] = _merge(job_id, owner, region="", md5=md5)
            continue
        known = objects.get((bucket, key))
        objects[(bucket, key)] = (OutputObject(bucket, region, key, md5) if known is None
                                  else _merge(job_id, known, region, md5))
    return tuple(objects.values())


def _merge(job_id: str, known: OutputObject, region: str, md5: str | None) -> OutputObject:
    if md5 and known.expected_md5 and md5 != known.expected_md5:
        raise MalformedCallback(f"job {job_id}: two different MD5s for {known.key!r}")
    if region and known.region and region != known.region:
        raise MalformedCallback(f"job {job_id}: two different regions for {known.bucket}/{known.key}")
    return OutputObject(known.bucket, known.region or region, known.key, known.expected_md5 or md5)


def _place(job: Job, output: OutputFile) -> tuple[str, str]:
    operation_output = job.operation.output if job.operation else None
    candidates = [(output.bucket, output.region)]
    if operation_output is not None:
        candidates.append((operation_output.bucket, operation_output.region))
    if job.input is not None:
        candidates.append((job.input.bucket_id, job.input.region))
    bucket = next((b for b, _ in candidates if b), "")
    region = next((r for b, r in candidates if r and b in ("", bucket)), "")
    return bucket, region


def unplaced_reason(target: OutputObject) -> str:
    missing = " and ".join(name for name, value in (("bucket", target.bucket), ("region", target.region))
                           if not value)
    return (f"no node of the job names the {missing} of this output (OutputFile, Operation.Output and Input "
            "are empty): it cannot be checked")


def _joined_key(prefix: str, name: str, where: str) -> str:
    """Each part was checked alone; together they can still form '..' (`a/.` + `./b`)."""
    if not name:  # whitespace only: it would name the prefix itself, or nothing
        raise MalformedCallback(f"{where}: an empty name")
    return object_key(prefix + name if prefix else name, where)
