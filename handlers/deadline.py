"""The invocation's time budget, and retries that never outlive it.

SCF's Python context has no remaining-time method; the deadline is derived from the
moment the handler started and `time_limit_in_ms`.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from handlers.errors import TransientError

T = TypeVar("T")

LOCAL_BUDGET_SECONDS = 60.0  # when no SCF context says otherwise (local runs, tests)
RESERVE_SECONDS = 1.0  # kept back to build and return the response
# Requests are given at most the time left (ObjectStore.bound), so an attempt can never
# outlive the invocation; this is just the least time worth starting one with.
MIN_ATTEMPT_SECONDS = 0.5


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() value
    budget: float | None = None  # seconds the whole invocation had to work in (its time limit, less the reserve)

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None, started: float | None = None) -> Deadline:
        started = time.monotonic() if started is None else started
        try:
            budget = float((context or {}).get("time_limit_in_ms")) / 1000.0  # type: ignore[arg-type]
        except (TypeError, ValueError):  # absent or not a number: a local run
            budget = LOCAL_BUDGET_SECONDS
        usable = max(budget - RESERVE_SECONDS, 0.5)
        return cls(started + usable, usable)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())


def retrying(action: Callable[[], T], deadline: Deadline, attempt_seconds: float = MIN_ATTEMPT_SECONDS,
             attempts: int = 4, base_delay: float = 0.2) -> T:
    """Run `action`, retrying TransientError with jittered backoff while the budget leaves
    at least `attempt_seconds` for a further try after the pause."""
    for attempt in range(attempts):
        try:
            return action()
        except TransientError:
            delay = base_delay * (2 ** attempt) * random.uniform(0.5, 1.5)
            if attempt == attempts - 1 or deadline.remaining() < delay + attempt_seconds:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")
