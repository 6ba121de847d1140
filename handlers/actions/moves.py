"""Move an output without ever losing it, and finish or recognise earlier moves on replay.

The protocol: make sure the destination is free (or already holds these bytes) → copy the
exact version that was verified (If-Match on its ETag) → confirm the destination holds the
same bytes → tag it → check the source is still that version → delete the source. At every
instant the bytes exist at the source, the destination, or both. No database: the state of
COS itself says how far an earlier delivery got.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol, TypeVar

from handlers.actions.policy import movable, tags_on
from handlers.actions.tag import ensure_tags, our_tags, write_tags
from handlers.actions.tag import tag as tag_in_place
from handlers.checking.verify import Inspector, check_object
from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import NotFound, PreconditionFailed, StorageError, TransientError
from handlers.intake.models import Check, Method, ObjectResult, ObjectState, OutputObject, Verdict
from handlers.storage.tags import JOB_TAG, MAX_TAGS, VERIFY_TAG, plan_tags

T = TypeVar("T")
PENDING = Verdict.PENDING.value
# VERIFY_MODE=server: CI's MD5 of the version an earlier delivery of this job moved, when the copy's tags name a
# FileHashCode job that CI says hashed it for this job (handlers/checking/serverhash.py); None when they name none.
HashedBy = Callable[[Mapping[str, str]], "str | None"]


# What a move asks of COS; checking a destination's bytes goes through an `inspector` (checking/reads.Inspected).
class Mover(Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def copy(self, source: OutputObject, state: ObjectState, dest: OutputObject) -> None: ...
    def delete(self, target: OutputObject) -> None: ...
    def tags(self, target: OutputObject) -> dict[str, str] | None: ...
    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None: ...
    def delete_tags(self, target: OutputObject) -> None: ...
    def get_bytes(self, target: OutputObject) -> bytes | None: ...


def destination_for(target: OutputObject, verdict: Verdict, job_id: str, settings: Settings) -> OutputObject:
    if verdict is Verdict.VERIFIED:
        template, bucket = settings.verified_destination, settings.verified_bucket
        expected = target.expected_md5
    else:
        template, bucket = settings.quarantine_destination, settings.quarantine_bucket
        expected = None  # a quarantined object holds bytes other than CI's
    key = template.format(key=target.key, jobId=job_id, bucket=target.bucket, verdict=verdict.value)
    return OutputObject(bucket or target.bucket, target.region, key, expected)


def holds_same_bytes(source: ObjectState, dest: ObjectState, content_md5: str | None) -> bool:
    """Whether a copy holds the source's bytes, judged from two HEADs.

    CRC-64 is what COS computes for every new object, whatever the upload; ETags only
    compare when neither side is multipart, so the known content MD5 is the fallback."""
    if source.size != dest.size:
        return False
    if source.crc64 and dest.crc64:
        return source.crc64 == dest.crc64
    return dest.etag == source.etag or (content_md5 is not None and dest.etag == content_md5)


class MoveBlocked(Exception):
    """The move cannot go on safely; the reason is reported and nothing more is done."""


def move(check: Check, job_id: str, source_tags: Callable[[], dict[str, str] | None], tag: bool,
         store: Mover, inspector: Inspector, settings: Settings, deadline: Deadline) -> ObjectResult:
    source, state = check.target, check.state
    assert state is not None
    dest = destination_for(source, check.verdict, job_id, settings)
    if (dest.bucket, dest.key) == (source.bucket, source.key):
        # Already where it belongs (an empty prefix into the bucket CI wrote to): moving it
        # could never succeed, and refusing would answer 503 forever. Tag it where it is.
        placed = tag_in_place(check, job_id, source_tags, store, deadline) if tag else ObjectResult(check)
        return replace(placed, notes=(*placed.notes, f"already at its {check.verdict.value} destination: "
                                                      "in place, not moved"))

    def step(action: Callable[[], T]) -> T:
        return retrying(action, deadline)

    try:
        present = step(lambda: store.head(dest))
        if present is not None and not holds_same_bytes(state, present, _known_md5(check)):
            raise MoveBlocked(f"{dest.bucket}/{dest.key} already exists with other bytes; not overwritten")
        if present is None:
            try:
                step(lambda: store.copy(source, state, dest))
            except NotFound as missing:
                # Another delivery may have finished this move between our HEAD and the copy.
                return _moved_result(source, check.verdict, job_id, tag, store, inspector, settings,
                                     deadline) or ObjectResult(
                    check, error=f"copy answered 404, the source or the destination bucket is missing: {missing}")
            present = step(lambda: store.head(dest))
            if present is None or not holds_same_bytes(state, present, _known_md5(check)):
                raise MoveBlocked(f"the copy at {dest.key} does not match the source; the source is kept")
        actions, notes = [], []
        # The user's tags travel with the object; ours join them when tagging is on. They are
        # read again now: the read beside the HEAD is older than the hash and the copy.
        carried = step(lambda: store.tags(source)) or {}
        # A destination that already held these bytes (a replay after an interrupted move, a
        # later job with identical output) keeps its own tags: a user may have set them.
        found: dict[str, str] | None = step(lambda: store.tags(dest)) if present is not None else None
        there = found or {}
        wanted, dropped = destination_tags(there, carried)
        notes.extend([dropped] if dropped else [])
        # `pending` (VERIFY_MODE=server) announced the hash now done: it never travels. A copy made in one
        # request brought it along, so the set is written even when nothing else changes.
        stale = PENDING in (carried.get(VERIFY_TAG), there.get(VERIFY_TAG))
        wanted = {key: value for key, value in wanted.items() if (key, value) != (VERIFY_TAG, PENDING)}
        ours: dict[str, str] = {}
        if tag:
            plan = plan_tags(wanted, check.verdict.value, job_id)
            if plan.tags is not None:
                wanted, ours = dict(plan.tags), our_tags(check.verdict, job_id)
            actions.append("tag-skipped" if plan.skipped else "tagged")
            notes.extend([plan.skipped] if plan.skipped else [])
        if wanted and (wanted != there or stale):
            write_tags(store, dest, wanted, ours, deadline)
        elif stale:
            step(lambda: store.delete_tags(dest))
        now = step(lambda: store.head(source))
        if now is not None and now.etag != state.etag:
            raise MoveBlocked(f"{source.key} was rewritten after it was copied; the new version is left in place")
        if now is not None:
            step(lambda: store.delete(source))
        actions.append(_moved(dest, source))
        return ObjectResult(check, actions=tuple(actions), notes=tuple(notes), moved_etag=present.etag)
    except PreconditionFailed:
        return ObjectResult(check, error=f"{source.key} changed while it was being moved; send the callback again")
    except MoveBlocked as blocked:
        return ObjectResult(check, error=str(blocked))
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, error=f"move failed: {exc}")


def find_moved(target: OutputObject, job_id: str, store: Mover, inspector: Inspector, settings: Settings,
               deadline: Deadline, hashed_by: HashedBy | None = None) -> ObjectResult | None:
    """For an output missing at its key, or replaced there by a version written after the job ended: the result
    of an earlier delivery that moved it, an `error` when whether one did cannot be told now (never `missing` or
    `superseded` then), or None when no destination holds it. Nothing is written at the key itself."""
    unsure = None
    for verdict in (Verdict.VERIFIED, Verdict.MISMATCH):
        if not movable(verdict, settings):
            continue
        found = _moved_result(target, verdict, job_id, tags_on(verdict, settings), store, inspector, settings, deadline,
                              hashed_by)
        if found is not None and found.check.verdict is Verdict.ERROR:
            unsure = unsure or found
        elif found is not None:
            return found
    return unsure


def _moved_result(target: OutputObject, verdict: Verdict, job_id: str, tag: bool, store: Mover, inspector: Inspector,
                  settings: Settings, deadline: Deadline, hashed_by: HashedBy | None = None) -> ObjectResult | None:
    dest = destination_for(target, verdict, job_id, settings)
    existing: dict[str, str] | None = None
    try:
        existing = retrying(lambda: store.tags(dest), deadline)
        if existing is None or not moved_by(job_id, existing, _template(verdict, settings)):
            return None  # nothing there, or another job's object (its tags and bytes are left alone)
        found = _recognised(target, dest, verdict, job_id, existing, store, inspector, settings, deadline, hashed_by)
    except (TransientError, StorageError) as exc:
        found = Check(target, Verdict.ERROR, Method.NONE, str(exc))
    if found is None:
        return None
    if found.verdict is Verdict.ERROR or existing is None:
        return ObjectResult(Check(target, Verdict.ERROR, Method.NONE, f"whether an earlier delivery moved it to "
                                  f"{dest.bucket}/{dest.key} could not be told: {found.reason}"))
    check = Check(target, verdict, found.method, found.reason, found.state, found.content_md5)
    actions, notes = [], []
    try:
        if tag:
            done = ensure_tags(store, dest, existing, verdict, job_id, deadline)
            actions.append(done.action)
            notes.extend([done.note] if done.note else [])
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, error=f"tagging the moved object failed: {exc}")
    actions.append(_moved(dest, target))
    return ObjectResult(check, actions=tuple(actions), notes=tuple(notes))


def _recognised(target: OutputObject, dest: OutputObject, verdict: Verdict, job_id: str, tags: Mapping[str, str],
                store: Mover, inspector: Inspector, settings: Settings, deadline: Deadline,
                hashed_by: HashedBy | None = None) -> Check | None:
    """The destination's check when it holds this job's earlier move with that verdict, an `error` check
    when that cannot be told, None when it does not.

    Its bytes are not read when something else says it: our tags for this job and verdict (written on the
    copy only once it was confirmed to hold the checked bytes), the job's audit report recording the move
    with the ETag the copy has, or (VERIFY_MODE=server) the FileHashCode job the copy's tags name, whose MD5
    CI reports for this job's output. Else the verified copy must hash to CI's MD5 (its ETag may say so), the
    quarantined one to anything else."""
    if tags.get(JOB_TAG) == job_id and tags.get(VERIFY_TAG) == verdict.value:
        state = retrying(lambda: store.head(dest), deadline)
        return None if state is None else Check(
            target, verdict, Method.NONE, f"moved by an earlier delivery: its tags at {dest.key} say so", state)
    if settings.report_prefix:
        state = retrying(lambda: store.head(dest), deadline)
        if state is None:
            return None
        if state.etag == _reported_move(target, dest, verdict, job_id, settings.report_prefix, store, deadline):
            return Check(target, verdict, Method.NONE,
                         f"moved by an earlier delivery: the job's audit report names {dest.key} and its ETag", state)
    hashed = hashed_by(tags) if hashed_by is not None and tags.get(JOB_TAG) == job_id else None
    if hashed is not None and (hashed == target.expected_md5) is (verdict is Verdict.VERIFIED):
        state = retrying(lambda: store.head(dest), deadline)
        return None if state is None else Check(
            target, verdict, Method.NONE, f"moved by an earlier delivery: CI hashed the output to {hashed} (the "
            f"FileHashCode job its tags at {dest.key} name)", state, hashed)
    probe = OutputObject(dest.bucket, dest.region, dest.key, target.expected_md5)
    found = check_object(probe, inspector, "auto" if verdict is Verdict.VERIFIED else "full", None, deadline)
    if found.verdict is Verdict.ERROR:
        return found
    return found if found.verdict is verdict else None


def _reported_move(target: OutputObject, dest: OutputObject, verdict: Verdict, job_id: str, prefix: str,
                   store: Mover, deadline: Deadline) -> str | None:
    """The ETag the job's audit report gives the copy it moved to `dest` with this verdict, if it records that."""
    where = OutputObject(target.bucket, target.region, f"{prefix}{job_id}.json", None)
    try:
        report = json.loads(retrying(lambda: store.get_bytes(where), deadline) or b"null")
    except ValueError:
        return None
    for entry in (report.get("objects") or []) if isinstance(report, dict) else []:
        if (isinstance(entry, dict) and (entry.get("bucket"), entry.get("key")) == (target.bucket, target.key)
                and entry.get("verdict") == verdict.value and _moved(dest, target) in (entry.get("actions") or [])):
            etag = entry.get("etag")
            return etag if isinstance(etag, str) and etag else None
    return None


def destination_tags(there: Mapping[str, str], carried: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The set a moved object gets (pure): the destination's own tags with the source's over
    them, and a note when together they pass COS's limit (the source's then win alone)."""
    merged = {**there, **carried}
    if len(merged) <= MAX_TAGS:
        return merged, ""
    lost = sorted(set(there) - set(carried))
    return dict(carried), (f"the destination's tags {', '.join(lost)} were not kept: with the object's own "
                           f"they exceed COS's {MAX_TAGS}")


def moved_by(job_id: str, dest_tags: Mapping[str, str], template: str) -> bool:
    """Whether the object at a destination is this job's earlier move (pure). Keys repeat
    across jobs (quarantine/{key} of two jobs writing out/a.mp3), so it must say so itself:
    its ci-job tag (written before a move deletes the source), or a template with {jobId}."""
    return dest_tags.get(JOB_TAG) == job_id or "{jobId}" in template


def _template(verdict: Verdict, settings: Settings) -> str:
    return settings.verified_destination if verdict is Verdict.VERIFIED else settings.quarantine_destination


def _known_md5(check: Check) -> str | None:
    if check.content_md5 is not None:
        return check.content_md5
    return check.target.expected_md5 if check.method is Method.ETAG else None


def _moved(dest: OutputObject, source: OutputObject) -> str:
    where = dest.key if dest.bucket == source.bucket else f"{dest.bucket}/{dest.key}"
    return f"moved:{where}"
