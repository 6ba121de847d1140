"""Which configured action applies to which verdict (pure)."""
from __future__ import annotations

from handlers.config import Settings
from handlers.intake.models import Verdict

# Objects whose bytes were hashed (or matched by ETag) are the only ones ever moved.
MOVABLE = frozenset({Verdict.VERIFIED, Verdict.MISMATCH})


def actions_for(verdict: Verdict, settings: Settings) -> frozenset[str]:
    """Verified objects take ACTION_VERIFIED; objects that failed or could not be checked take
    ACTION_FAILED. Missing, superseded and errored objects are never touched."""
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
