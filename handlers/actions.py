"""Tag an object with its verdict, in place (moves carry tags along: handlers/moves.py)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from handlers.deadline import Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.models import Check, ObjectResult, OutputObject, Verdict
from handlers.tags import plan_tags

TagReader = Callable[[], "dict[str, str] | None"]


class Tagger(Protocol):
    def put_tags(self, target: OutputObject, tags: Mapping[str, str]) -> None: ...


def ensure_tags(store: Tagger, place: OutputObject, existing: Mapping[str, str], verdict: Verdict,
                job_id: str, deadline: Deadline) -> tuple[str, str]:
    """Write our tags into `place`'s `existing` set unless already there; returns the action
    ("tagged" or "tag-skipped") and, when skipped, why."""
    plan = plan_tags(existing, verdict.value, job_id)
    if plan.tags is not None:
        tags = plan.tags
        retrying(lambda: store.put_tags(place, tags), deadline)
    return ("tag-skipped", plan.skipped) if plan.skipped else ("tagged", "")


def tag(check: Check, job_id: str, read_tags: TagReader, store: Tagger, deadline: Deadline) -> ObjectResult:
    try:
        existing = read_tags()
        if existing is None:
            raise TransientError(f"{check.target.key} disappeared between its HEAD and its tag read")
        action, note = ensure_tags(store, check.target, existing, check.verdict, job_id, deadline)
    except (TransientError, StorageError) as exc:
        return ObjectResult(check, error=f"tagging failed: {exc}")
    return ObjectResult(check, actions=(action,), notes=(note,) if note else ())
