"""What the timer's sweep looks through: RECONCILE_BUCKETS (by default ALLOWED_BUCKETS in this
region), RECONCILE_TAGS, RECONCILE_WINDOW_MINUTES, RECONCILE_QUEUES, RECONCILE_WORKERS."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from handlers.config import ANY_BUCKET, BUCKET, REGION, ConfigError, Reader, Settings, items, region
from handlers.intake.settings import buckets

_QUEUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # CI's media queue ids: `p` and 32 hex digits


def read(reader: Reader) -> dict[str, Any]:
    env = reader.env
    none: tuple[tuple[str, str], ...] = ()
    swept = reader.read(lambda: reconcile_buckets(env, "RECONCILE_BUCKETS"), none)
    return {
        "reconcile_buckets": swept,
        "reconcile_tags": tuple(reader.items("RECONCILE_TAGS")) or ("VoiceSeparate",),
        "reconcile_window_minutes": reader.integer("RECONCILE_WINDOW_MINUTES", 60, 1, 7 * 24 * 60),
        "reconcile_queues": reader.read(lambda: reconcile_queues(env, "RECONCILE_QUEUES", swept), none),
        "reconcile_workers": reader.integer("RECONCILE_WORKERS", 20, 0, 1000),
    }


def sweep_problem(settings: Settings) -> ConfigError | None:
    """Why a timer tick would find no bucket to sweep; None when it has some. Not a problem at
    cold start (a function need not have a timer), but a tick that comes is one: it fails naming it."""
    if settings.reconcile_buckets:
        return None
    allowed = sorted(settings.allowed_buckets - {ANY_BUCKET})
    if allowed and not settings.region:
        return ConfigError("DEFAULT_REGION", f"is not set, nor TENCENTCLOUD_REGION (SCF sets it): the sweep cannot "
                                             f"look for the jobs of {', '.join(allowed)} (ALLOWED_BUCKETS) without "
                                             "their region; set DEFAULT_REGION, or RECONCILE_BUCKETS=bucket:region")
    return ConfigError("RECONCILE_BUCKETS", f"is not set and ALLOWED_BUCKETS is '{ANY_BUCKET}': the timer has no "
                                            "bucket to sweep; list them in RECONCILE_BUCKETS (bucket or bucket:region)")


def reconcile_buckets(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """`bucket` or `bucket:region` entries; unset: the ALLOWED_BUCKETS list, in this region."""
    own = region(env)
    entries = items(env, name)
    if not entries:
        allowed = buckets(env, "ALLOWED_BUCKETS")
        if ANY_BUCKET in allowed or not own:
            return ()  # sweep_problem says why, when a tick comes
        return tuple((bucket, own) for bucket in sorted(allowed))
    pairs = []
    for entry in entries:
        bucket, _, own_region = entry.partition(":")
        if not BUCKET.fullmatch(bucket):
            raise ConfigError(name, f"{bucket!r} is not a bucket name like examplebucket-1250000000")
        if not (own_region or own):
            raise ConfigError(name, f"{entry!r} names no region and neither DEFAULT_REGION nor "
                                    "TENCENTCLOUD_REGION is set")
        if own_region and not REGION.fullmatch(own_region):
            raise ConfigError(name, f"{own_region!r} is not a region like ap-chongqing")
        pairs.append((bucket, own_region or own))
    return tuple(pairs)


def reconcile_queues(env: Mapping[str, str], name: str,
                     swept_buckets: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`queueId` (a queue of every swept bucket) or `bucket:queueId` entries; unset: CI's queue API says."""
    swept = {bucket for bucket, _ in swept_buckets}
    entries = []
    for entry in items(env, name):
        bucket, _, queue = entry.rpartition(":")
        if not _QUEUE_ID.fullmatch(queue):
            raise ConfigError(name, f"{queue!r} is not a CI queue id like p0123456789abcdef0123456789abcdef")
        if bucket and not BUCKET.fullmatch(bucket):
            raise ConfigError(name, f"{bucket!r} is not a bucket name like examplebucket-1250000000")
        if bucket and bucket not in swept:
            raise ConfigError(name, f"{entry!r} names bucket {bucket!r}, which RECONCILE_BUCKETS does not sweep")
        entries.append((bucket, queue))
    return tuple(entries)
