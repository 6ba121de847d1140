"""Decide whether an output object holds the bytes CI reported.

The rules are pure functions over what a HEAD and a content hash tell; `check_object`
runs the requests. An ETag equal to the expected MD5 accepts an object (a coincidence is
impossible in practice); anything else is settled by hashing the content. Nothing is ever
judged a mismatch on an ETag alone: multipart ETags are not MD5s.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from handlers.checking.throughput import HashEstimate
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import Check, Method, ObjectState, OutputObject, Verdict

# A key rewritten this long after the job ended belongs to a later job.
SUPERSEDED_AFTER = timedelta(seconds=60)
_ADVICE = ("raise the function's timeout (SCF allows up to 900 s for event functions; with DISPATCH=async "
           "CI's HTTP call does not wait for it), or set VERIFY_MODE=server so that CI hashes the object itself")
_ASSUMED_ADVICE = ", or HASH_MIB_PER_SECOND if hashing here is reliably faster"
TOO_LARGE = "too large for this configuration"


class Inspector(Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def hash_estimate(self, size: int) -> HashEstimate: ...
    def hash_skipped(self, size: int) -> None: ...
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
    return f"not enough time to hash {size} bytes: {detail}; {_ADVICE}{_ASSUMED_ADVICE}"


def hash_time_problem(size: int, remaining: float, estimate: HashEstimate,
                      budget: float | None = None) -> tuple[str, bool] | None:
    """Why a hash of `size` bytes should not be started with `remaining` seconds left, and
    whether no invocation of this configuration (`budget` seconds) could do it; None when it
    fits. Starting one that cannot finish would only be cut off (in SCF: killed, with no
    answer and no log of why)."""
    if estimate.seconds <= remaining:
        return None
    advice = _ADVICE if estimate.measured else _ADVICE + _ASSUMED_ADVICE
    speed = f"at {estimate.describe()} that takes about {estimate.seconds:,.1f} s"
    if budget is not None and estimate.fastest > budget:
        # Every retry would refuse it again: say so, so that nobody waits for the next one.
        if estimate.fastest < estimate.seconds:  # a faster speed than the one learnt decided it
            speed = (f"even at {estimate.best_basis} ({size / (1 << 20) / estimate.fastest:,.0f} MiB/s) that "
                     f"takes about {estimate.fastest:,.1f} s")
        return (f"{TOO_LARGE}: not enough time to hash {size} bytes ({size / (1 << 30):.2f} GiB): {speed}, "
                f"more than the {budget:.1f} s an invocation of this function has, so it was not started and "
                f"no retry will start it; {advice}"), True
    return (f"not enough time to hash {size} bytes: {speed} and {remaining:.1f} s are left, so it was not "
            f"started; {advice}"), False


def decide_by_content(target: OutputObject, state: ObjectState, md5: str, job_end: datetime | None) -> Check:
    if md5 == target.expected_md5:
        return Check(target, Verdict.VERIFIED, Method.CONTENT, "", state, md5)
    if job_end is not None and state.last_modified > job_end + SUPERSEDED_AFTER:
        reason = (f"content MD5 {md5} differs, but the object was rewritten at "
                  f"{state.last_modified.isoformat()}, after the job ended: it belongs to a later job")
        return Check(target, Verdict.SUPERSEDED, Method.CONTENT, reason, state, md5)
    return Check(target, Verdict.MISMATCH, Method.CONTENT, f"content MD5 is {md5}", state, md5)


def check_object(target: OutputObject, store: Inspector, mode: str, job_end: datetime | None,
                 deadline: Deadline) -> Check:
    def inspect() -> Check:
        state = store.head(target)
        settled = decide_without_content(target, state, mode)
        if settled is not None:
            return settled
        assert state is not None
        remaining, estimate = deadline.remaining(), store.hash_estimate(state.size)
        too_long = hash_time_problem(state.size, remaining, estimate, deadline.budget)
        if too_long is not None:
            reason, too_large = too_long
            if estimate.fastest <= remaining:  # skipped on the learnt speed alone: let it recover
                store.hash_skipped(state.size)
            return Check(target, Verdict.ERROR, Method.NONE, reason, state, too_large=too_large)
        return decide_by_content(target, state, store.content_md5(target, state.etag, state.size), job_end)

    try:
        return retrying(inspect, deadline)
    except (TransientError, StorageError) as exc:
        return Check(target, Verdict.ERROR, Method.NONE, str(exc))
