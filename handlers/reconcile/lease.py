"""A lease on one list (bucket, queue, tag), so that two ticks at once do not both do its work.

SCF's timer invokes asynchronously: a tick that overruns its period overlaps the next one. The
lease, `<checkpoint key minus .checkpoint>.lease`, is `{"holder": <request id>, "until": <time>}`.
COS has no create-if-absent write (../shared/DESIGN.md), so it is taken the way tags are: read,
write, read back; of two takers in the same round trip both may proceed. That only costs work done
twice: correctness never depends on the lease (every check is idempotent and the checkpoint merges,
handlers/reconcile/checkpoint.py). An invocation SCF cuts off leaves its lease to run out at `until`,
its own deadline.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Protocol

from handlers.deadline import Deadline, retrying
from handlers.intake.models import OutputObject

CI_TIME = "%Y-%m-%dT%H:%M:%S%z"


class LeaseStore(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...
    def delete(self, target: OutputObject) -> None: ...


@dataclass(frozen=True)
class Holder:
    holder: str
    until: datetime


def lease_of(checkpoint: OutputObject) -> OutputObject:
    return OutputObject(checkpoint.bucket, checkpoint.region,
                        checkpoint.key.removesuffix(".checkpoint") + ".lease", None)


def parse(body: bytes | None) -> Holder | None:
    """The holder a lease names; None for no lease or one that cannot be read (it protects nothing)."""
    if body is None:
        return None
    try:
        document = json.loads(body)
        return Holder(str(document["holder"]), datetime.strptime(str(document["until"]), CI_TIME))
    except (ValueError, KeyError, TypeError):
        return None


def busy(current: Holder | None, me: str, now: datetime) -> Holder | None:
    """Someone else's live lease, or None (pure)."""
    if current is None or current.holder == me or current.until <= now:
        return None
    return current


def acquire(store: LeaseStore, where: OutputObject, me: str, until: datetime, deadline: Deadline,
            now: datetime | None = None) -> Holder | None:
    """Take the lease until `until`; returns the other holder when one has it (then nothing is
    written). Raises TransientError, StorageError."""
    now = now or datetime.now(timezone.utc)
    other = busy(parse(retrying(partial(store.get_bytes, where), deadline)), me, now)
    if other is not None:
        return other
    body = json.dumps({"holder": me, "until": until.astimezone(timezone.utc).strftime(CI_TIME)}).encode()
    retrying(partial(store.put_bytes, where, body, "application/json"), deadline)
    # The read-back: a taker whose write landed after ours holds it; we leave the list to it.
    return busy(parse(retrying(partial(store.get_bytes, where), deadline)), me, now)


def release(store: LeaseStore, where: OutputObject, me: str, deadline: Deadline) -> None:
    """Delete the lease if it is still ours (one that ran out may have been taken since)."""
    current = parse(retrying(partial(store.get_bytes, where), deadline))
    if current is not None and current.holder == me:
        retrying(partial(store.delete, where), deadline)
