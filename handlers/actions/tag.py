"""Tag an object with its verdict, in place (moves carry tags along: handlers/actions/moves.py).

COS has no conditional tagging: PUT ?tagging replaces the whole set, whoever wrote last
wins. So the set is read as late as possible before it is written (again, when a content
hash made the first read old), and read once more after: a writer that read before our PUT
and wrote after it has dropped our tags, and they are merged back into its set in a second
write. What remains is the README's residual window: a tag written between our last read
and our PUT (one round trip) is overwritten.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import Check, Method, ObjectResult, ObjectState, OutputObject, Verdict
from handlers.storage.tags import JOB_TAG, VERIFY_TAG, plan_tags, without_ours

TagReader = Callable[[], "dict[str, str] | None"]
R = TypeVar("R")


class Beside(Protocol):
    """Starts a read (retried within the deadline) and returns what waits for its result:
    the caller's pool runs it beside whatever the caller does next."""

    def __call__(self, read: Callable[[], R]) -> Callable[[], R]: ...


class Tagger(Protocol):
    def tags(self, target: OutputObject) -> dict[str, str] | None: ...
    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None: ...


class InPlaceTagger(Tagger, Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def delete_tags(self, target: OutputObject) -> None: ...


@dataclass(frozen=True)
class Tagged:
    action: str  # "tagged" | "tag-skipped"
    note: str = ""
    wrote: bool = False  # a PUT ?tagging was sent (replays of a finished job send none)


# --- pure -------------------------------------------------------------------------------

def our_tags(verdict: Verdict, job_id: str) -> dict[str, str]:
    return {VERIFY_TAG: verdict.value, JOB_TAG: job_id}


def merged_back(after: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str] | None:
    """The set to write again when the set read after our write lacks our tags (another
    writer's, which stays as it is: it may have removed a tag on purpose); None when ours
    are there, or adding them would break COS's limits."""
    if all(after.get(k) == v for k, v in ours.items()):
        return None
    plan = plan_tags(after, ours[VERIFY_TAG], ours[JOB_TAG])
    return dict(plan.tags) if plan.tags is not None else None


# --- I/O ----------------------------------------------------------------------------------

def write_tags(store: Tagger, place: OutputObject, tags: Mapping[str, str], ours: Mapping[str, str],
               deadline: Deadline) -> None:
    """PUT the set, read it back, and merge our tags back once if a concurrent writer dropped them."""
    retrying(lambda: store.put_tags(place, tags), deadline)
    read_back(store, place, tags, ours, deadline)


def read_back(store: Tagger, place: OutputObject, tags: Mapping[str, str], ours: Mapping[str, str],
              deadline: Deadline) -> bool:
    """Whether our tags had to be written again."""
    after = retrying(lambda: store.tags(place), deadline)
    if after is None or after == dict(tags):
        return False
    again = merged_back(after, ours)
    if again is None:
        return False
    retrying(lambda: store.put_tags(place, again), deadline)
    return True


def ensure_tags(store: Tagger, place: OutputObject, existing: Mapping[str, str], verdict: Verdict,
                job_id: str, deadline: Deadline) -> Tagged:
    """Write our tags into `place`'s `existing` set unless already there."""
    plan = plan_tags(existing, verdict.value, job_id)
    if plan.tags is not None:
        write_tags(store, place, plan.tags, our_tags(verdict, job_id), deadline)
    return Tagged("tag-skipped", plan.skipped) if plan.skipped else Tagged("tagged", wrote=plan.tags is not None)


def tag(check: Check, job_id: str, read_tags: TagReader, store: InPlaceTagger, deadline: Deadline,
        beside: Beside | None = None) -> ObjectResult:
    target = check.target
    start = beside or _one_after_the_other(deadline)
    try:
        # The read beside the HEAD is as fresh as any when the ETag decided; a content hash
        # may have taken minutes, during which a user may have tagged the object.
        existing = retrying(lambda: store.tags(target), deadline) if check.method is Method.CONTENT else read_tags()
        if existing is None:
            raise TransientError(f"{target.key} disappeared between its HEAD and its tag read")
        plan = plan_tags(existing, check.verdict.value, job_id)
        if plan.tags is None:
            return ObjectResult(check, actions=("tag-skipped" if plan.skipped else "tagged",),
                                notes=(plan.skipped,) if plan.skipped else ())
        tags, ours = plan.tags, our_tags(check.verdict, job_id)
        retrying(lambda: store.put_tags(target, tags), deadline)
        # The version checked may have been replaced before our writes landed: then our tags
        # sit on bytes nobody checked. Only a HEAD after the last write can tell (a version
        # written after it starts with no tags). It goes out beside the read-back, which
        # writes again only when a concurrent writer dropped our tags: then a second HEAD.
        head = start(lambda: store.head(target))
        now = retrying(lambda: store.head(target), deadline) if read_back(store, target, tags, ours, deadline) \
            else head()
        if now is None or check.state is None or now.etag != check.state.etag:
            return _superseded(check, now, ours, store, deadline)
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, error=f"tagging failed: {exc}")
    return ObjectResult(check, actions=("tagged",))


def _one_after_the_other(deadline: Deadline) -> Beside:
    """No pool to read beside: each read runs when it is started."""
    def start(read: Callable[[], R]) -> Callable[[], R]:
        value = retrying(read, deadline)
        return lambda: value
    return start


def _superseded(check: Check, now: ObjectState | None, ours: Mapping[str, str], store: InPlaceTagger,
                deadline: Deadline) -> ObjectResult:
    """The object changed under the tag write: take our tags off the new version (it belongs to
    whoever rewrote it) and report it superseded."""
    target = check.target
    was = check.state.etag if check.state is not None else "?"
    if now is None:
        reason = f"deleted while it was being tagged (it was ETag {was} when checked)"
        return ObjectResult(Check(target, Verdict.SUPERSEDED, check.method, reason, None, check.content_md5))
    current = retrying(lambda: store.tags(target), deadline) or {}
    cleaned = without_ours(current, ours)
    if cleaned:
        retrying(lambda: store.put_tags(target, cleaned), deadline)
    elif cleaned is not None:
        retrying(lambda: store.delete_tags(target), deadline)
    reason = (f"rewritten while it was being tagged (ETag {was} when checked, {now.etag} now): the new version "
              f"belongs to whoever wrote it{'; our tags were taken off it' if cleaned is not None else ''}")
    return ObjectResult(Check(target, Verdict.SUPERSEDED, check.method, reason, now, check.content_md5),
                        actions=("untagged",) if cleaned is not None else ())
