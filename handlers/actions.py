"""Act on a verdict: tag the object in place, or move it (handlers/moves.py)."""
from __future__ import annotations

from collections.abc import Callable

from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.models import Check, ObjectResult, Verdict
from handlers.moves import Mover, move
from handlers.tags import plan_tags

TagReader = Callable[[], "dict[str, str] | None"]
# Objects whose bytes were hashed (or matched by ETag) are the only ones ever moved.
MOVABLE = frozenset({Verdict.VERIFIED, Verdict.MISMATCH})


def actions_for(verdict: Verdict, settings: Settings) -> frozenset[str]:
    """Which configured actions apply: verified objects take ACTION_VERIFIED; objects that
    failed or could not be checked take ACTION_FAILED. Missing, superseded and errored
    objects are never touched."""
    if verdict is Verdict.VERIFIED:
        return settings.action_verified
    if verdict in (Verdict.MISMATCH, Verdict.UNVERIFIABLE):
        return settings.action_failed
    return frozenset()


def reads_tags(settings: Settings) -> bool:
    """Tags are read beside the HEAD whenever an action may write them (a move carries them)."""
    return bool(settings.action_verified | settings.action_failed)


def movable(verdict: Verdict, settings: Settings) -> bool:
    return verdict in MOVABLE and "move" in actions_for(verdict, settings)


def tags_on(verdict: Verdict, settings: Settings) -> bool:
    return "tag" in actions_for(verdict, settings)


def act(check: Check, job_id: str, read_tags: TagReader, store: Mover, settings: Settings,
        deadline: Deadline) -> ObjectResult:
    if movable(check.verdict, settings):
        return move(check, job_id, read_tags, tags_on(check.verdict, settings), store, settings, deadline)
    if tags_on(check.verdict, settings):
        return tag(check, job_id, read_tags, store, settings, deadline)
    return ObjectResult(check)


def tag(check: Check, job_id: str, read_tags: TagReader, store: Mover, settings: Settings,
        deadline: Deadline) -> ObjectResult:
    try:
        existing = read_tags()
        if existing is None:
            raise TransientError(f"{check.target.key} disappeared between its HEAD and its tag read")
        plan = plan_tags(existing, check.verdict.value, job_id)
        if plan.done:
            return ObjectResult(check, actions=("tagged",))
        if plan.tags is None:
            return ObjectResult(check, actions=("tag-skipped",), notes=(plan.skipped,))
        tags = plan.tags
        retrying(lambda: store.put_tags(check.target, tags), deadline)
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, error=f"tagging failed: {exc}")
    return ObjectResult(check, actions=("tagged",))
