"""Parse a CI callback body (XML or JSON) into a `Callback`, and list the objects a job wrote."""
from __future__ import annotations

import json
from typing import Any

import xmltodict
from xml.parsers.expat import ExpatError

from handlers.models import Callback, Job, OutputObject
from handlers.nodes import MalformedCallback, build

__all__ = ["MalformedCallback", "parse_callback", "output_objects", "body_format"]


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
    callback = build(Callback, tree, "Response")
    if not callback.jobs_detail:
        raise MalformedCallback("Response.JobsDetail is missing: no job to check")
    for job in callback.jobs_detail:
        output_objects(job)  # refuse contradictory output lists now, before any request
    return callback


def _parse_xml(text: str) -> Any:
    # Entity declarations are how XML bombs and external-entity reads start; CI never sends them.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MalformedCallback("DOCTYPE and ENTITY declarations are not accepted")
    try:
        doc = xmltodict.parse(text, disable_entities=True)
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
    if set(doc) == {"Response"}:
        doc = doc["Response"]
    return doc


def output_objects(job: Job) -> tuple[OutputObject, ...]:
    """Every object the job reports writing, each with CI's MD5 when it gave one.

    `Md5Info.ObjectName` is a full key; `OutputFile.ObjectName` entries are relative to
    `ObjectPrefix` when it is set (Segment, Snapshot) and full keys when it is empty.
    """
    result = job.operation.media_result if job.operation else None
    if result is None:
        return ()
    fallback = job.operation.output if job.operation else None
    objects: dict[tuple[str, str], OutputObject] = {}
    for output in result.output_file:
        bucket = output.bucket or (fallback.bucket if fallback else "")
        region = output.region or (fallback.region if fallback else "")
        if not bucket or not region:
            raise MalformedCallback(f"job {job.job_id}: OutputFile names no bucket or region")
        for info in output.md5_info:
            known = objects.setdefault((bucket, info.object_name),
                                       OutputObject(bucket, region, info.object_name, info.md5))
            if known.expected_md5 != info.md5:
                raise MalformedCallback(f"job {job.job_id}: two different MD5s for {info.object_name!r}")
        for name in output.object_name:
            key = output.object_prefix + name if output.object_prefix else name
            objects.setdefault((bucket, key), OutputObject(bucket, region, key, None))
    return tuple(objects.values())
