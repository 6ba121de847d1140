"""What a verdict does to an object: ACTION_VERIFIED, ACTION_MISMATCH (formerly ACTION_FAILED),
where a move puts it (VERIFIED_PREFIX/BUCKET, QUARANTINE_PREFIX/BUCKET), and how COS copies it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.config import ConfigError, Reader, Settings, value

ACTIONS = ("tag", "move")
DESTINATION_FIELDS = ("key", "jobId", "bucket", "verdict")
# ACTION_FAILED named what happens to `mismatch` (and `unverifiable`) objects, not to failed jobs.
MISMATCH, FORMER_MISMATCH = "ACTION_MISMATCH", "ACTION_FAILED"


def read(reader: Reader) -> dict[str, Any]:
    env = reader.env
    return {
        "action_verified": reader.read(lambda: actions(env, "ACTION_VERIFIED"), frozenset({"tag"})),
        "action_failed": reader.read(lambda: mismatch_actions(env), frozenset({"tag"})),
        "verified_destination": reader.read(lambda: destination(env, "VERIFIED_PREFIX", "verified/"),
                                            "verified/{key}"),
        "quarantine_destination": reader.read(lambda: destination(env, "QUARANTINE_PREFIX", "quarantine/"),
                                              "quarantine/{key}"),
        "verified_bucket": reader.value("VERIFIED_BUCKET"),
        "quarantine_bucket": reader.value("QUARANTINE_BUCKET"),
        "multipart_copy_bytes": reader.integer("MULTIPART_COPY_THRESHOLD_MB", 5120, 2, 5120) << 20,
        "copy_part_bytes": reader.integer("COPY_PART_MB", 512, 1, 5120) << 20,
    }


def deprecations(env: Mapping[str, str]) -> list[str]:
    """What to warn about once at cold start: a variable read under its former name."""
    if (env.get(FORMER_MISMATCH) or "").strip() and not (env.get(MISMATCH) or "").strip():
        return [f"{FORMER_MISMATCH} is read as {MISMATCH}, its new name (it acts on mismatch and unverifiable "
                f"objects, not on failed jobs): rename it; {FORMER_MISMATCH} will stop being read"]
    return []


def mismatch_actions(env: Mapping[str, str]) -> frozenset[str]:
    if not value(env, MISMATCH):
        return actions(env, FORMER_MISMATCH)
    chosen = actions(env, MISMATCH)
    if value(env, FORMER_MISMATCH) and actions(env, FORMER_MISMATCH) != chosen:
        raise ConfigError(MISMATCH, f"differs from {FORMER_MISMATCH}, its former name: remove {FORMER_MISMATCH}")
    return chosen


def actions(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = value(env, name).lower() or "tag"
    if raw == "none":
        return frozenset()
    chosen = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = chosen - set(ACTIONS)
    if unknown or not chosen:
        raise ConfigError(name, f"{raw!r}: use {', '.join(ACTIONS)} or none")
    return chosen


def destination(env: Mapping[str, str], name: str, default: str) -> str:
    """A prefix (`verified/`) or a template naming {key}; stored as a template. Set but empty is
    a prefix of its own (the key unchanged): problems_with says where that cannot be."""
    found = default if env.get(name) is None else value(env, name)
    template = found if "{" in found else found + "{key}"
    try:
        template.format(key="k", jobId="j", bucket="b", verdict="v")
    except (KeyError, IndexError, ValueError) as exc:
        fields = ", ".join(DESTINATION_FIELDS)
        raise ConfigError(name, f"{found!r} is not a template of {{{fields}}}: {exc}") from None
    if "{key}" not in template:
        raise ConfigError(name, f"{found!r} must contain {{key}}, or every object would land on one key")
    return template


def lands_on_itself(template: str) -> bool:
    """Whether a destination template maps every key to itself (an empty prefix)."""
    return template.format(key="k", jobId="j", bucket="b", verdict="v") == "k"


def problems_with(settings: Settings) -> list[ConfigError]:
    """An empty prefix matters only to a move: into the object's own bucket (no *_BUCKET), or
    into a bucket callbacks may name (listed in ALLOWED_BUCKETS), it would move outputs onto
    themselves. With `*` that is not known at cold start (an object already at its destination
    is then simply tagged in place); with tag alone nothing moves."""
    problems = []
    for chosen, template, bucket, prefix, bucket_variable in (
            (settings.action_verified, settings.verified_destination, settings.verified_bucket,
             "VERIFIED_PREFIX", "VERIFIED_BUCKET"),
            (settings.action_failed, settings.quarantine_destination, settings.quarantine_bucket,
             "QUARANTINE_PREFIX", "QUARANTINE_BUCKET")):
        if "move" not in chosen or not lands_on_itself(template):
            continue
        if not bucket:
            problems.append(ConfigError(prefix, f"is empty and {bucket_variable} is not set: a move would land on "
                                                "the source itself; set a prefix or another bucket"))
        elif bucket in settings.allowed_buckets:
            problems.append(ConfigError(prefix, f"is empty and {bucket_variable}={bucket} is in ALLOWED_BUCKETS: "
                                                "its outputs would be moved onto themselves; set a prefix or "
                                                "another bucket"))
    return problems
