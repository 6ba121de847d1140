"""Merge the function's tags into an object's existing set, within COS's limits (pure).

PUT Object tagging replaces the whole set, so the function reads the tags first and writes
the union. When the union would break a limit it keeps the user's tags and writes nothing.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_TAGS = 10
# In UTF-8 bytes: PUT Object tagging (https://cloud.tencent.com/document/product/436/42997) wants a key
# shorter than 128 bytes and a value shorter than 256; the object tag overview
# (https://cloud.tencent.com/document/product/436/35665) says 1-127 and 1-255, so no empty value.
MAX_KEY = 127
MAX_VALUE = 255
_ALLOWED = re.compile(r"[\w +\-=._:/@]*")  # letters and digits (\w), space and + - = . _ : / @

VERIFY_TAG = "ci-verify"
JOB_TAG = "ci-job"


@dataclass(frozen=True)
class TagPlan:
    """`tags` is the full set to write; None means write nothing: either the object already
    carries our tags (`done`), or writing them would drop a user's tag (`skipped` says why)."""

    tags: Mapping[str, str] | None
    skipped: str = ""
    done: bool = False


def problem(key: str, value: str) -> str:
    """Why COS would refuse this tag, or '' when it is acceptable."""
    if not 1 <= len(key.encode("utf-8")) <= MAX_KEY:
        return f"tag key {key[:32]!r} must be 1..{MAX_KEY} bytes in UTF-8"
    if not value:
        return f"tag value for {key!r} is empty; COS refuses empty tag values"
    if len(value.encode("utf-8")) > MAX_VALUE:
        return f"tag value for {key!r} is longer than {MAX_VALUE} bytes in UTF-8"
    for part in (key, value):
        if not _ALLOWED.fullmatch(part):
            return f"tag {key!r}={value[:32]!r} uses characters COS does not allow in tags"
    return ""


def plan_tags(existing: Mapping[str, str], verdict: str, job_id: str) -> TagPlan:
    ours = {VERIFY_TAG: verdict, JOB_TAG: job_id}
    if all(existing.get(key) == value for key, value in ours.items()):
        return TagPlan(None, done=True)
    for key, value in ours.items():
        reason = problem(key, value)
        if reason:
            return TagPlan(None, skipped=reason)
    merged = {**existing, **ours}
    if len(merged) > MAX_TAGS:
        users = len(merged) - len(ours)
        return TagPlan(None, skipped=f"the object has {users} tags of its own; COS allows {MAX_TAGS} in all")
    return TagPlan(merged)


def without_ours(current: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str] | None:
    """`current` with our tags taken off, or None when it carries none of them."""
    kept = {k: v for k, v in current.items() if ours.get(k) != v}
    return kept if len(kept) != len(current) else None
