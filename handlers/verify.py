"""Decide whether an output object holds the bytes CI reported.

The rules are pure functions over what a HEAD and a content hash tell; `check_object`
runs the requests. An ETag equal to the expected MD5 accepts an object (a coincidence is
impossible in practice); anything else is settled by hashing the content. Nothing is ever
judged a mismatch on an ETag alone: multipart ETags are not MD5s.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.models import Check, Method, ObjectState, OutputObject, Verdict

# A key rewritten this long after the job ended belongs to a later job.
SUPERSEDED_AFTER = timedelta(seconds=60)
DEFAULT_HASH_MIB_PER_SECOND = 20
_ADVICE = ("raise the function's timeout (up to 900 s; with DISPATCH=async CI's HTTP call does not "
           "wait for it), or HASH_MIB_PER_SECOND if hashing here is reliably faster")


class Inspector(Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def content_md5(self, target: OutputObject, etag: str, size: int = -1) -> str: ...


def decide_without_content(target: OutputObject, state: ObjectState | None, mode: str) -> Check | None:
    """The verdict a HEAD alone settles, or None when the content must be hashed."""
    if state is None:
        return Check(target, Verdict.MISSING, Method.NONE, "the object does not exist", None)
    if target.expected_md5 is None:
        return Check(target, Verdict.UNVERIFIABLE, Method.NONE, "CI reported no MD5 for this object", state)
    if mode == "auto" and state.etag == target.expected_md5:
        return Check(target, Verdict.VERIFIED, Method.ETAG, "", state)
    return None


def out_of_time(size: int, detail: str) -> str:
    """The reason of an `error` verdict for a hash the invocation had no time for."""
    return f"not enough time to hash {size} bytes: {detail}; {_ADVICE}"


def hash_time_problem(size: int, remaining: float, mib_per_second: float) -> str | None:
    """Why a hash of `size` bytes should not be started with `remaining` seconds left, or
    None when it fits at a conservative speed. Starting one that cannot finish would only
    be cut off (in SCF: killed, with no answer and no log of why)."""
    needed = size / (mib_per_second * (1 << 20))
    if needed <= remaining:
        return None
    return out_of_time(size, f"at {mib_per_second:g} MiB/s that takes {needed:.1f} s and {remaining:.1f} s "
                             "are left, so it was not started")


def decide_by_content(target: OutputObject, state: ObjectState, md5: str, job_end: datetime | None) -> Check:
    if md5 == target.expected_md5:
        return Check(target, Verdict.VERIFIED, Method.CONTENT, "", state, md5)
    if job_end is not None and state.last_modified > job_end + SUPERSEDED_AFTER:
        reason = (f"content MD5 {md5} differs, but the object was rewritten at "
                  f"{state.last_modified.isoformat()}, after the job ended: it belongs to a later job")
        return Check(target, Verdict.SUPERSEDED, Method.CONTENT, reason, state, md5)
    return Check(target, Verdict.MISMATCH, Method.CONTENT, f"content MD5 is {md5}", state, md5)


def check_object(target: OutputObject, store: Inspector, mode: str, job_end: datetime | None,
                 deadline: Deadline, hash_mib_per_second: float = DEFAULT_HASH_MIB_PER_SECOND) -> Check:
    def inspect() -> Check:
        state = store.head(target)
        settled = decide_without_content(target, state, mode)
        if settled is not None:
            return settled
        assert state is not None
        too_long = hash_time_problem(state.size, deadline.remaining(), hash_mib_per_second)
        if too_long is not None:
            return Check(target, Verdict.ERROR, Method.NONE, too_long, state)
        return decide_by_content(target, state, store.content_md5(target, state.etag, state.size), job_end)

    try:
        return retrying(inspect, deadline)
    except (TransientError, StorageError) as exc:
        return Check(target, Verdict.ERROR, Method.NONE, str(exc))
