"""Act on a verdict: tag the object (moves come with their own protocol)."""
from __future__ import annotations

from typing import Callable, Mapping, Protocol

from handlers.config import Settings
from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.models import Check, ObjectResult, OutputObject, Verdict
from handlers.tags import plan_tags

TagReader = Callable[[], "dict[str, str] | None"]


class Tagger(Protocol):
    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None: ...


def actions_for(verdict: Verdict, settings: Settings) -> frozenset[str]:
    """Which configured actions apply: verified objects take ACTION_VERIFIED; objects that
    failed or could not be checked take ACTION_FAILED. Missing, superseded and errored
    objects are never touched."""
    if verdict is Verdict.VERIFIED:
        return settings.action_verified
    if verdict in (Verdict.MISMATCH, Verdict.UNVERIFIABLE):
        return settings.action_failed
    return frozenset()


def wants_tags(settings: Settings) -> bool:
    return "tag" in settings.action_verified or "tag" in settings.action_failed


def act(check: Check, job_id: str, read_tags: TagReader, store: Tagger, settings: Settings,
        deadline: Deadline) -> ObjectResult:
    if "tag" not in actions_for(check.verdict, settings):
        return ObjectResult(check)
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
        retrying(lambda: store.put_tags(check.target, tags), deadline, settings.cos_timeout)
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, error=f"tagging failed: {exc}")
    return ObjectResult(check, actions=("tagged",))
