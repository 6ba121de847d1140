"""What every list of a sweep's tick is swept with (Means), built once per tick by Sweep."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handlers.config import Settings
from handlers.intake.models import ObjectState, OutputObject
from handlers.reconcile.checks import JobRunner
from handlers.reconcile.handoff import Workers
from handlers.reconcile.listing import JobLister
from handlers.reconcile.plan import Allowed


class StateStore(Protocol):
    def head(self, target: OutputObject) -> ObjectState | None: ...
    def tags(self, target: OutputObject) -> dict[str, str] | None: ...
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...
    def delete(self, target: OutputObject) -> None: ...


@dataclass(frozen=True)
class Means:
    settings: Settings
    run_job: JobRunner
    lister: JobLister
    store: StateStore
    me: str  # the invocation: it holds the leases and signs the checkpoints and markers
    prefix: str  # where the function keeps its records (handlers/storage/records.state_prefix)
    allowed: Allowed
    workers: Workers  # one for the tick: RECONCILE_WORKERS bounds its hand-offs over all its lists
