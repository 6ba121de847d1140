"""What was announced: one record per job, `<REPORT_PREFIX or .ci-callback-verifier/>notified/<JobId>.json`
in the job's output bucket, listing the messages sent (URL hash, host, webhook-id, problems). It is read
once per invocation, whatever the number of objects and URLs, and added to after the messages are sent.

COS has no create-if-absent write (../shared/DESIGN.md), so windows remain: two deliveries running at the
same moment both find a problem unannounced and both send it; so does a replay after an invocation that
sent a message and was cut off (or could not write the record) before it was written; and two invocations
that record messages at the same moment can overwrite each other (each reads right before its write and
reads back after it, as the audit reports do: what remains is both writes within one read-to-write gap),
so a later replay announces the lost one again. The webhook-id closes these for receivers that dedupe on
it whenever the duplicate names the same problems."""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from functools import partial
from typing import Any, Protocol

from handlers import log
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import JobResult, OutputObject
from handlers.operations.audit import location_of
from handlers.operations.notifications.message import Notice, Problem, message_id, problems
from handlers.storage.records import STATE_PREFIX


class RecordStore(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


# --- the record (pure) ----------------------------------------------------------------------------

def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]  # the URL carries a credential: never stored


def record_of(result: JobResult, prefix: str) -> OutputObject | None:
    """Where the messages sent about the job are recorded (None: the job names no bucket)."""
    where = location_of(result.job, prefix or STATE_PREFIX)
    if where is None:
        return None
    return OutputObject(where.bucket, where.region, f"{prefix or STATE_PREFIX}notified/{result.job.job_id}.json", None)


def _messages(record: bytes | None, job_id: str) -> list[dict[str, Any]]:
    """The messages a record lists; none for no record, or an object that is no record of this job's."""
    try:
        data = json.loads(record) if record else None
    except ValueError:
        return []
    if not isinstance(data, dict) or data.get("jobId") != job_id or not isinstance(data.get("messages"), list):
        return []
    return [m for m in data["messages"] if isinstance(m, dict) and isinstance(m.get("problems"), list)]


def announced_in(record: bytes | None, job_id: str) -> dict[str, frozenset[Problem]]:
    """The problems announced to each URL (by its hash), as the record lists them."""
    found: dict[str, set[Problem]] = {}
    for message in _messages(record, job_id):
        named = found.setdefault(str(message.get("url")), set())
        for p in message["problems"]:
            if isinstance(p, dict):
                named.add(("", str(p["outcome"])) if "outcome" in p else (str(p.get("key")), str(p.get("verdict"))))
    return {url: frozenset(named) for url, named in found.items()}


def record_entry(notice: Notice, url: str, host: str, fmt: str, sent_at: float) -> dict[str, Any]:
    return {"url": url_hash(url), "host": host, "format": fmt, "outcome": notice.outcome,
            "webhookId": message_id(notice), "requestId": notice.request_id,
            "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at)),
            "problems": [{"outcome": what} if not key else {"key": key, "verdict": what}
                         for key, what in sorted(problems(notice))]}


def _sent(message: Mapping[str, Any]) -> tuple[object, object]:
    return message.get("url"), message.get("webhookId")


def merged_record(earlier: bytes | None, job_id: str, entries: list[dict[str, Any]]) -> bytes:
    """The record listing the earlier messages and `entries` (pure)."""
    messages = _messages(earlier, job_id)
    known = {_sent(m) for m in messages}
    messages += [e for e in entries if _sent(e) not in known]
    return json.dumps({"jobId": job_id, "messages": messages}, ensure_ascii=False, indent=1).encode()


def record_lost(current: bytes | None, job_id: str, entries: list[dict[str, Any]]) -> bool:
    """Whether a writer that read before our write overwrote it, dropping a message of ours (pure)."""
    there = {_sent(m) for m in _messages(current, job_id)}
    return any(_sent(e) not in there for e in entries)


# --- reading and adding to it (I/O) ----------------------------------------------------------------

def read_announced(store: RecordStore, where: OutputObject, job_id: str,
                   deadline: Deadline) -> dict[str, frozenset[Problem]]:
    """The problems announced to each URL hash: one read. Raises TransientError or StorageError."""
    return announced_in(retrying(partial(store.get_bytes, where), deadline), job_id)


def add(store: RecordStore, where: OutputObject, job_id: str, entries: list[dict[str, Any]],
        deadline: Deadline) -> None:
    """Add the messages sent to the job's record: read right before writing, read back after (another
    invocation's write may have landed in between), written again once when ours was dropped."""
    def write() -> None:
        store.put_bytes(where, merged_record(store.get_bytes(where), job_id, entries), "application/json")
    try:
        retrying(write, deadline)
        if record_lost(retrying(partial(store.get_bytes, where), deadline), job_id, entries):
            retrying(write, deadline)
    except (TransientError, StorageError) as exc:
        log.error("notification sent but not recorded: a replay will send it again", jobId=job_id,
                  reason=str(exc))
