"""The sweep's checkpoint: per bucket, media queue and tag, what has been listed and found settled.

One small JSON object an operator can read and repair by hand, at
`<REPORT_PREFIX or .ci-callback-verifier/>sweep/<QueueId>/<Tag>.checkpoint` in the swept bucket
(the backfill keeps its own, `backfill/...`):

    {"version": 1, "queueId": "p…", "tag": "VoiceSeparate",
     "since": "2026-11-23T10:00:00+0000",            # the period it speaks for starts after this
     "settledThrough": "2026-11-23T11:48:00+0000",   # every job created after `since` and at or before this is settled
     "settled": {"j…": "2026-11-23T11:49:02+0000"},  # jobs created after settledThrough found settled
     "handedOff": {"j…": {"created": "…", "until": "…", "invocation": "…"}},  # in a worker's hands until then
     "updatedAt": "…", "updatedBy": "<request id>", "lastTick": {...}}

It only ever claims what a tick saw: a job is settled when its marker exists (handlers/reconcile/settled.py,
never deleted) or CI lists it failed, cancelled or without outputs, so every claim stays true. That
makes any checkpoint valid and two of them merge by taking the later `settledThrough` and the union of
the rest: two ticks that overlap (SCF's timer is asynchronous) and both write lose at most the other's
progress (its jobs are looked at again, one HEAD each), never a job. Deleting the object makes the
next tick start again from the window; setting `settledThrough` back makes it look again from there.

CI lists a job only by its CreationTime, and a job created at T may finish long after: so
`settledThrough` never passes a job the tick saw unfinished or could not settle; it trails the oldest
such job (at most RECONCILE_WINDOW_MINUTES: a job still unsettled then is given up and named in the
tick's log, as the window always did) and the newest EDGE_SECONDS (a job CI has not shown yet).
Everything here is pure; the store adapter is at the end.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Protocol

from handlers.deadline import Deadline, retrying
from handlers.models import OutputObject

VERSION = 1
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"  # CI's own format: an operator can copy a job's CreationTime in
# Jobs created this close to the tick may not be listed yet (CI's clock, its index): the checkpoint
# keeps them as settled ids instead of moving past them.
EDGE_SECONDS = 120
# A bound on the ids kept; past it the ones nearest settledThrough are dropped (looked at again, one HEAD each).
MAX_SETTLED = 20_000
SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class HandOff:
    created: datetime
    until: datetime
    invocation: str = ""


@dataclass(frozen=True)
class Checkpoint:
    since: datetime  # the period's start (exclusive): the sweep's window, or the backfill's --since
    settled_through: datetime  # every job created in (since, settled_through] is settled
    settled: Mapping[str, datetime] = field(default_factory=dict)  # job id -> CreationTime, after settled_through
    handed_off: Mapping[str, HandOff] = field(default_factory=dict)
    updated_at: datetime | None = None
    updated_by: str = ""
    last_tick: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, since: datetime) -> Checkpoint:
        return cls(since, since)


@dataclass
class Observations:
    """What one tick (or worker) learnt about the jobs it listed, by id: (CreationTime)."""

    settled: dict[str, datetime] = field(default_factory=dict)
    unsettled: dict[str, datetime] = field(default_factory=dict)  # unfinished, failed to check, or left
    handed_off: dict[str, HandOff] = field(default_factory=dict)

    def settle(self, job_id: str, created: datetime) -> None:
        self.unsettled.pop(job_id, None)
        self.handed_off.pop(job_id, None)
        self.settled[job_id] = created

    def hold(self, job_id: str, created: datetime) -> None:
        if job_id not in self.settled:
            self.unsettled[job_id] = created


# --- pure: the rules ----------------------------------------------------------------------------

def covering(checkpoint: Checkpoint | None, since: datetime) -> Checkpoint:
    """The checkpoint for a period starting after `since`: the stored one when it speaks for it,
    moved up to `since` (what is older is outside the period); a fresh one when it starts later
    than `since` (a backfill asked to go further back than before) or there is none."""
    if checkpoint is None or checkpoint.since > since:
        return Checkpoint.fresh(since)
    return replace(checkpoint, since=since, settled_through=max(since, checkpoint.settled_through),
                   settled=_kept(checkpoint.settled, max(since, checkpoint.settled_through)))


def is_settled(checkpoint: Checkpoint, job_id: str, created: datetime | None) -> bool:
    if job_id in checkpoint.settled:
        return True
    return created is not None and checkpoint.since < created <= checkpoint.settled_through


def in_hands(checkpoint: Checkpoint, job_id: str, now: datetime) -> bool:
    """A worker is on it (its invocation and SCF's retries have not run out of time yet)."""
    handed = checkpoint.handed_off.get(job_id)
    return handed is not None and handed.until > now


def frontier(listed_all: bool, last_created: datetime | None, start: datetime, end: datetime,
             now: datetime) -> datetime:
    """The newest CreationTime up to which the listing saw every job (pure): the end of a listing that
    reached it, less EDGE_SECONDS; else the second before the last job listed (its second may hold more);
    else where it started."""
    if listed_all:
        return max(start, min(end, now - timedelta(seconds=EDGE_SECONDS)))
    if last_created is None:
        return start
    return max(start, last_created - SECOND)


def advanced(checkpoint: Checkpoint, seen: Observations, listed_through: datetime, now: datetime,
             horizon: datetime) -> tuple[Checkpoint, list[str]]:
    """The checkpoint after a tick, and the ids given up (unsettled and older than `horizon`, the
    window's start: the sweep looks no further back).

    settledThrough moves to the listing's frontier, but never past a job the tick saw unsettled; the
    settled ids behind it are dropped (the CreationTime covers them now)."""
    through = listed_through
    blockers = sorted(seen.unsettled.items(), key=lambda item: item[1])
    if blockers:
        through = min(through, blockers[0][1] - SECOND)
    through = max(through, checkpoint.settled_through, horizon)
    given_up = [job_id for job_id, created in blockers if created <= through]
    settled = {**checkpoint.settled, **seen.settled}
    handed = {**checkpoint.handed_off, **seen.handed_off}
    return replace(checkpoint, settled_through=through, settled=_kept(settled, through),
                   handed_off={i: h for i, h in handed.items()
                               if h.created > through and h.until > now and i not in settled}), given_up


def merged(ours: Checkpoint, theirs: Checkpoint | None) -> Checkpoint:
    """Two valid checkpoints as one (pure): every claim of either stays true. Both claim an interval
    (since, settledThrough]; from the later `since` on, the later end is covered by one of them."""
    if theirs is None:
        return ours
    since = max(ours.since, theirs.since)
    through = max(ours.settled_through, theirs.settled_through, since)
    settled = _kept({**theirs.settled, **ours.settled}, through)
    handed = dict(theirs.handed_off)
    for job_id, hand_off in ours.handed_off.items():
        if job_id not in handed or handed[job_id].until < hand_off.until:
            handed[job_id] = hand_off
    return replace(ours, since=since, settled_through=through, settled=settled,
                   handed_off={i: h for i, h in handed.items() if h.created > through and i not in settled})


def _kept(settled: Mapping[str, datetime], through: datetime) -> dict[str, datetime]:
    kept = sorted(((i, c) for i, c in settled.items() if c > through), key=lambda item: item[1])
    return dict(kept[-MAX_SETTLED:])


# --- the JSON form --------------------------------------------------------------------------------

def to_json(checkpoint: Checkpoint, queue_id: str, tag: str) -> bytes:
    document = {
        "version": VERSION, "queueId": queue_id, "tag": tag,
        "since": _text(checkpoint.since), "settledThrough": _text(checkpoint.settled_through),
        "settled": {i: _text(c) for i, c in checkpoint.settled.items()},
        "handedOff": {i: {"created": _text(h.created), "until": _text(h.until), "invocation": h.invocation}
                      for i, h in checkpoint.handed_off.items()},
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
            since=_time(document["since"]), settled_through=_time(document["settledThrough"]),
            settled={str(i): _time(c) for i, c in (document.get("settled") or {}).items()},
            handed_off={str(i): HandOff(_time(h["created"]), _time(h["until"]), str(h.get("invocation") or ""))
                        for i, h in (document.get("handedOff") or {}).items()},
            updated_at=_time(document["updatedAt"]) if document.get("updatedAt") else None,
            updated_by=str(document.get("updatedBy") or ""), last_tick=dict(document.get("lastTick") or {}))
    except BadCheckpoint:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
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


def settled_ids(checkpoint: Checkpoint) -> Iterable[str]:
    return checkpoint.settled.keys()
