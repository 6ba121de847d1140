"""The `pending` tag VERIFY_MODE=server writes while a FileHashCode job hashes an object (`ci-verify=pending`,
`ci-job`, `ci-hash-job=<file job>`), so that a lost callback can be made good; and taking it off once the hash it
announced is over. COS tags have no condition: every write is checked by a HEAD after it."""
from __future__ import annotations

from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import Check, ObjectResult, ObjectState, OutputObject, Verdict
from handlers.storage.cos import ObjectStore
from handlers.storage.tags import JOB_TAG, MAX_TAGS, VERIFY_TAG, without_ours

HASH_JOB_TAG = "ci-hash-job"  # on a pending object: the file job hashing it
PENDING = Verdict.PENDING.value


def mark(pending: Check, job_id: str, hash_job: str, store: ObjectStore, deadline: Deadline) -> ObjectResult:
    """Tag the object pending with the file job's id, so that a lost callback can be made good."""
    assert pending.state is not None
    ours = {VERIFY_TAG: PENDING, JOB_TAG: job_id, HASH_JOB_TAG: hash_job}
    try:
        existing = store.tags(pending.target) or {}
        merged = {**existing, **ours}
        if len(merged) > MAX_TAGS:
            return ObjectResult(pending, notes=(f"not tagged pending: the object has {len(existing)} tags; COS "
                                                f"allows {MAX_TAGS}",))
        retrying(lambda: store.put_tags(pending.target, merged), deadline)
        if not _still(pending.target, pending.state, ours, store, deadline):
            return ObjectResult(pending, actions=("untagged",), notes=(
                "rewritten while it was being tagged pending: our tags were taken off the new version",))
    except (TransientError, StorageError) as exc:
        # The file job's callback finishes the object all the same; only a lost callback would go unnoticed.
        return ObjectResult(pending, notes=(f"not tagged pending: {exc}",))
    return ObjectResult(pending, actions=("tagged",))


def clear_pending(check: Check, job_id: str, store: ObjectStore, deadline: Deadline) -> ObjectResult:
    """`check` with our `pending` tag taken off its object: the hash it announced is over (decided, or failed
    for good) and the verdict's action writes no tag over it. `ci-job` and `ci-hash-job` stay: they say whose
    output it is and which hash job ran, and claim no verdict."""
    target, state = check.target, check.state
    assert state is not None
    try:
        tags = retrying(lambda: store.tags(target), deadline)
        if tags is None or tags.get(VERIFY_TAG) != PENDING or tags.get(JOB_TAG) != job_id:
            return ObjectResult(check)
        kept = {key: value for key, value in tags.items() if key != VERIFY_TAG}
        if kept:
            retrying(lambda: store.put_tags(target, kept), deadline)
        else:
            retrying(lambda: store.delete_tags(target), deadline)
        ours = {JOB_TAG: job_id, HASH_JOB_TAG: tags.get(HASH_JOB_TAG, "")}
        _still(target, state, ours, store, deadline)
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, notes=(f"its `pending` tag could not be taken off: {exc}",))
    return ObjectResult(check, actions=("untagged",))


def _still(target: OutputObject, state: ObjectState, ours: dict[str, str], store: ObjectStore,
           deadline: Deadline) -> bool:
    """Whether the version a tag write was meant for is still there; if another replaced it before the write
    landed, our tags are taken off that one (it belongs to whoever wrote it) and False. COS tags have no
    condition: only a HEAD after the write can tell (a version written after it starts with no tags)."""
    now = retrying(lambda: store.head(target), deadline)
    if now is not None and now.etag == state.etag:
        return True
    if now is not None:
        current = retrying(lambda: store.tags(target), deadline) or {}
        cleaned = without_ours(current, ours)
        if cleaned:
            retrying(lambda: store.put_tags(target, cleaned), deadline)
        elif cleaned is not None:
            retrying(lambda: store.delete_tags(target), deadline)
    return False
