"""The settings, read once at cold start: each concern's variables are read and checked by the
`settings.py` beside the code that uses them; this module, at the top, puts them together.

Every problem of one reading is reported at once, by variable, in one ConfigError (one per run
would take a deployer as many runs to learn them); a variable is reported once, by its first
problem. `Settings` (handlers/config.py) is the one type the packages take; `Settings.from_env`
here is the reading.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers import config
from handlers.actions import settings as actions
from handlers.checking import settings as checking
from handlers.ci import settings as ci
from handlers.config import Reader
from handlers.intake import settings as intake
from handlers.operations import settings as operations
from handlers.reconcile import settings as reconcile
from handlers.storage import settings as storage

__all__ = ["Settings", "deprecations", "from_env"]


def from_env(env: Mapping[str, str]) -> config.Settings:
    """The settings, or a ConfigError naming every problem at once."""
    reader = Reader(env)
    fields: dict[str, Any] = {}
    for concern in (storage, checking, actions, intake, ci, reconcile, operations):
        fields.update(concern.read(reader))
    fields.update(runtime(reader))
    settings = config.Settings(**fields)
    for problem in actions.problems_with(settings):
        reader.check(problem)
    if reader.problems:
        reported = tuple(p.variable for p in reader.problems)
        for problem in intake.callback_problems(settings, reported):  # what App would refuse next, said now
            reader.check(problem)
        raise reader.error()
    return settings


def runtime(reader: Reader) -> dict[str, Any]:
    return {
        "retry_after_seconds": reader.integer("RETRY_AFTER_SECONDS", 30, 1, 3600),
        "log_level": reader.choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper(),
    }


def deprecations(env: Mapping[str, str]) -> list[str]:
    """Variables read under a former name: warned about once, at cold start."""
    return actions.deprecations(env)


class Settings(config.Settings):
    """config.Settings with its reading: `Settings.from_env(env)` (what callers outside the
    packages use; the packages take config.Settings, built here)."""

    from_env = staticmethod(from_env)
