"""The sweep's checkpoint: per bucket, media queue and tag, what has been listed and found settled.

One small JSON object an operator can read and repair by hand, at
`<REPORT_PREFIX or .ci-callback-verifier/>sweep/<QueueId>/<Tag>.checkpoint` in the swept bucket
(the backfill keeps its own, `backfill/...`):

    {"version": 2, "queueId": "p…", "tag": "VoiceSeparate",
     "since": "2026-11-23T10:00:00+0000",           # the period it speaks for starts after this
     "listedThrough": "2026-11-23T11:48:00+0000",   # every job created after `since` and at or before
                                                    # this was listed, and is settled unless `held`
     "held": {"j…": "2026-11-23T11:02:13+0000"},    # listed, not settled yet: unfinished, handed off,
                                                    # left for lack of time, or its check failed
     "settled": {"j…": "2026-11-23T11:49:02+0000"}, # jobs created after listedThrough found settled
     "handedOff": {"j…": {"until": "…", "invocation": "…"}},  # held jobs a worker has, until then
     "outputs": {"<bucket>/<key>": ["j…", "<created>"]},     # the newest job of the period per output
     "updatedAt": "…", "updatedBy": "<request id>", "lastTick": {...}}

A tick lists from `listedThrough` on (CI lists a job by its CreationTime only, so the listing never
goes back over what it read: a job that finishes long after it was created is held by id and looked
at again by id, ten to a request of DescribeMediaJob) and looks at the held jobs again. A job
settles when its marker exists (handlers/operations/settled.py, never deleted) or CI lists it
failed, cancelled or without outputs, so every claim stays true: any checkpoint is valid, and two of
them merge (a job is settled if either says so). Two ticks that overlap (SCF's timer is asynchronous)
and both write lose at most the other's progress, never a job. A held job older than the window is
given up and named in the tick's log (as the window always did; the backfill can still reach it).
Deleting the object makes the next tick start again from the window; setting `listedThrough` back
makes it list again from there; removing a job from `held` declares it settled.

A job settled once is not looked at again, so a later job that writes one of its outputs again (its
report would keep naming bytes that are gone) is caught through `outputs`: when the sweep lists a job
writing a key an earlier job of the period wrote, it looks at the earlier one again (its output is
then `superseded`). Writes by anyone but a CI job the sweep lists are not caught this way.
Everything here is pure; the store adapter is at the end.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Protocol

from handlers.deadline import Deadline, retrying
from handlers.intake.models import OutputObject

VERSION = 2
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"  # CI's own format: an operator can copy a job's CreationTime in
# Jobs created this close to the tick may not be listed yet (CI's clock, its index): the listing's
# frontier stays this far behind, and the jobs past it found settled are kept by id.
EDGE_SECONDS = 120
# Bounds on what is kept by id. Past MAX_HELD the listing stops going further (the held jobs are looked
# at first); past the others the ones nearest listedThrough are dropped (looked at again: one request).
MAX_HELD = 20_000
MAX_SETTLED = 20_000
MAX_OUTPUTS = 50_000
SECOND = timedelta(seconds=1)

Writer = tuple[str, datetime]  # (job id, CreationTime)


@dataclass(frozen=True)
class HandOff:
    until: datetime
    invocation: str = ""


@dataclass(frozen=True)
class Checkpoint:
    since: datetime  # the period's start (exclusive): the sweep's window, or the backfill's --since
    listed_through: datetime  # every job created in (since, listed_through] was listed
    held: Mapping[str, datetime] = field(default_factory=dict)  # of those, not settled yet: id -> CreationTime
    settled: Mapping[str, datetime] = field(default_factory=dict)  # after listed_through, settled
    handed_off: Mapping[str, HandOff] = field(default_factory=dict)  # held jobs in a worker's hands
    outputs: Mapping[str, Writer] = field(default_factory=dict)  # "<bucket>/<key>" -> its newest writer
    updated_at: datetime | None = None
    updated_by: str = ""
    last_tick: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, since: datetime) -> Checkpoint:
        return cls(since, since)


@dataclass
class Observations:
    """What one tick learnt about the jobs it listed or looked at again, by id: (CreationTime)."""

    settled: dict[str, datetime] = field(default_factory=dict)
    unsettled: dict[str, datetime] = field(default_factory=dict)  # unfinished, failed to check, or left
    handed_off: dict[str, HandOff] = field(default_factory=dict)
    outputs: dict[str, Writer] = field(default_factory=dict)

    def settle(self, job_id: str, created: datetime) -> None:
        self.unsettled.pop(job_id, None)
        self.handed_off.pop(job_id, None)
        self.settled[job_id] = created

    def hold(self, job_id: str, created: datetime) -> None:
        if job_id not in self.settled:
            self.unsettled[job_id] = created


# --- pure: the rules ----------------------------------------------------------------------------

def is_settled(checkpoint: Checkpoint, job_id: str, created: datetime | None) -> bool:
    """What the checkpoint claims about a job (pure)."""
    if job_id in checkpoint.settled:
        return True
    return (created is not None and checkpoint.since < created <= checkpoint.listed_through
            and job_id not in checkpoint.held)


def in_hands(checkpoint: Checkpoint, job_id: str, now: datetime) -> bool:
    """A worker is on it (its invocation and SCF's retries have not run out of time yet)."""
    handed = checkpoint.handed_off.get(job_id)
    return handed is not None and handed.until > now


def covering(checkpoint: Checkpoint | None, since: datetime) -> tuple[Checkpoint, list[str]]:
    """The checkpoint for a period starting after `since`, and the held jobs it gives up (older than
    `since`: outside the period). A stored checkpoint that starts later than `since` (a backfill asked
    to go further back than before) does not speak for it: a fresh one does."""
    if checkpoint is None or checkpoint.since > since:
        return Checkpoint.fresh(since), []
    through = max(since, checkpoint.listed_through)
    given_up = sorted(i for i, c in checkpoint.held.items() if c <= since)
    return replace(checkpoint, since=since, listed_through=through,
                   held={i: c for i, c in checkpoint.held.items() if c > since},
                   settled=_after(checkpoint.settled, through, MAX_SETTLED),
                   handed_off={i: h for i, h in checkpoint.handed_off.items() if i in checkpoint.held},
                   outputs=_writers(checkpoint.outputs, {}, since)), given_up


def frontier(listed_all: bool, last_created: datetime | None, start: datetime, end: datetime,
             now: datetime) -> datetime:
    """The newest CreationTime up to which the listing saw every job (pure): the end of a listing that
    reached it, less EDGE_SECONDS; else the second before the last job listed (its second may hold more);
    else where it started."""
    if listed_all:
        return max(start, min(end - SECOND, now - timedelta(seconds=EDGE_SECONDS)))
    if last_created is None:
        return start
    return max(start, last_created - SECOND)


def advanced(checkpoint: Checkpoint, seen: Observations, listed_to: datetime, now: datetime) -> Checkpoint:
    """The checkpoint after a tick that listed up to `listed_to` (pure).

    What the tick found unsettled up to there is held; what it found settled leaves `held`; held jobs
    it did not get to stay held; past `listed_to`, the settled ones are kept by id and the rest will be
    listed again."""
    through = max(checkpoint.listed_through, listed_to)
    held = {i: c for i, c in {**checkpoint.held, **seen.unsettled}.items() if c <= through and i not in seen.settled}
    handed = {**checkpoint.handed_off, **seen.handed_off}
    return replace(checkpoint, listed_through=through, held=held,
                   settled=_after({**checkpoint.settled, **seen.settled}, through, MAX_SETTLED),
                   handed_off={i: h for i, h in handed.items() if i in held and h.until > now},
                   outputs=_writers(checkpoint.outputs, seen.outputs, checkpoint.since))


def merged(ours: Checkpoint, theirs: Checkpoint | None) -> Checkpoint:
    """Two valid checkpoints as one (pure): a job is settled if either says so. Each claims: every job
    created in (since, listedThrough] is settled unless held; from the later `since` on, the later
    `listedThrough` is covered by that one, whose held jobs stay held unless the other settled them."""
    if theirs is None:
        return ours
    since = max(ours.since, theirs.since)
    ahead, behind = (ours, theirs) if ours.listed_through >= theirs.listed_through else (theirs, ours)
    through = max(ahead.listed_through, since)
    held = {i: c for i, c in ahead.held.items() if c > since and not is_settled(behind, i, c)}
    settled = {**theirs.settled, **ours.settled}
    handed = dict(theirs.handed_off)
    for job_id, hand_off in ours.handed_off.items():
        if job_id not in handed or handed[job_id].until < hand_off.until:
            handed[job_id] = hand_off
    return replace(ours, since=since, listed_through=through, held=held,
                   settled=_after(settled, through, MAX_SETTLED),
                   handed_off={i: h for i, h in handed.items() if i in held},
                   outputs=_writers(theirs.outputs, ours.outputs, since))


def earlier_writer(outputs: Mapping[str, Writer], key: str, job_id: str,
                   created: datetime) -> tuple[str, Writer] | None:
    """When another job of the period wrote `key` too: (the older of the two, the newer as the key's
    writer from now on). The older one's report may name bytes that are gone (pure)."""
    other = outputs.get(key)
    if other is None or other[0] == job_id:
        return None
    older, newer = sorted((other, (job_id, created)), key=lambda writer: writer[1])
    return older[0], newer


def _writers(old: Mapping[str, Writer], new: Mapping[str, Writer], since: datetime) -> dict[str, Writer]:
    """Per output the newest writer of the period, at most MAX_OUTPUTS of them."""
    writers = dict(old)
    for key, writer in new.items():
        if key not in writers or writers[key][1] <= writer[1]:
            writers[key] = writer
    kept = sorted(((k, w) for k, w in writers.items() if w[1] > since), key=lambda item: item[1][1])
    return dict(kept[-MAX_OUTPUTS:])


def _after(ids: Mapping[str, datetime], through: datetime, bound: int) -> dict[str, datetime]:
    kept = sorted(((i, c) for i, c in ids.items() if c > through), key=lambda item: item[1])
    return dict(kept[-bound:])


# --- the JSON form --------------------------------------------------------------------------------

def to_json(checkpoint: Checkpoint, queue_id: str, tag: str) -> bytes:
    document = {
        "version": VERSION, "queueId": queue_id, "tag": tag,
        "since": _text(checkpoint.since), "listedThrough": _text(checkpoint.listed_through),
        "held": {i: _text(c) for i, c in checkpoint.held.items()},
        "settled": {i: _text(c) for i, c in checkpoint.settled.items()},
        "handedOff": {i: {"until": _text(h.until), "invocation": h.invocation}
                      for i, h in checkpoint.handed_off.items()},
        "outputs": {k: [w[0], _text(w[1])] for k, w in checkpoint.outputs.items()},
        "updatedAt": _text(checkpoint.updated_at) if checkpoint.updated_at else None,
        "updatedBy": checkpoint.updated_by, "lastTick": dict(checkpoint.last_tick),
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


class BadCheckpoint(ValueError):
    """The object is not a checkpoint this code wrote (or an operator's edit broke it)."""


def from_json(body: bytes) -> Checkpoint:
    try:
        document = json.loads(body)
        if not isinstance(document, dict) or document.get("version") != VERSION:
            raise BadCheckpoint(f"expected a version {VERSION} checkpoint object")
        return Checkpoint(
            since=_time(document["since"]), listed_through=_time(document["listedThrough"]),
            held={str(i): _time(c) for i, c in (document.get("held") or {}).items()},
            settled={str(i): _time(c) for i, c in (document.get("settled") or {}).items()},
            handed_off={str(i): HandOff(_time(h["until"]), str(h.get("invocation") or ""))
                        for i, h in (document.get("handedOff") or {}).items()},
            outputs={str(k): (str(w[0]), _time(w[1])) for k, w in (document.get("outputs") or {}).items()},
            updated_at=_time(document["updatedAt"]) if document.get("updatedAt") else None,
            updated_by=str(document.get("updatedBy") or ""), last_tick=dict(document.get("lastTick") or {}))
    except BadCheckpoint:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise BadCheckpoint(f"not a readable checkpoint: {exc!r}") from None


def _text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(CI_TIME)


def _time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise BadCheckpoint(f"expected a time like 2026-11-23T11:48:00+0000, got {text!r}")
    try:
        moment = datetime.strptime(text.strip(), CI_TIME)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip())  # an operator may write 2026-11-23T11:48:00+00:00
        except ValueError:
            raise BadCheckpoint(f"expected a time like 2026-11-23T11:48:00+0000, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --- the store ----------------------------------------------------------------------------------

class StateStore(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


def location(bucket: str, region: str, prefix: str, kind: str, queue_id: str, tag: str) -> OutputObject:
    return OutputObject(bucket, region, f"{prefix}{kind}/{queue_id}/{tag}.checkpoint", None)


def load(store: StateStore, where: OutputObject, deadline: Deadline) -> Checkpoint | None:
    """The stored checkpoint; None when there is none. Raises BadCheckpoint, TransientError, StorageError."""
    body = retrying(partial(store.get_bytes, where), deadline)
    return None if body is None else from_json(body)


def save(store: StateStore, where: OutputObject, checkpoint: Checkpoint, queue_id: str, tag: str,
         deadline: Deadline) -> Checkpoint:
    """Write the checkpoint merged with the one stored now (another tick may have written meanwhile);
    returns what was written. Raises TransientError, StorageError."""
    try:
        stored = load(store, where, deadline)
    except BadCheckpoint:
        stored = None
    written = merged(checkpoint, stored)
    retrying(partial(store.put_bytes, where, to_json(written, queue_id, tag), "application/json"), deadline)
    return written
