"""Ranged parallel reads (issue 13, item 1) of a big multipart object, against hashlib.md5
over the same bytes in memory, measured in this run:

- each connection capped at a quarter of this machine's MD5 speed (an object store limits
  each connection): READ_CONNECTIONS=4 against READ_CONNECTIONS=1 (one connection, as before);
- the same without a cap (the ranges must not cost what MD5 can do);
- the process's peak memory growth while reading in ranges (bounded by connections × part).
"""
from __future__ import annotations

from bench.figures import Figure
from bench.remote import RemoteEmulator, pattern_md5
from bench.streaming import MEMORY_BOUND_MIB, hashlib_seconds, probe
from bench.workload import BUCKET, REGION, SECRET_ID, SECRET_KEY, TOKEN

MIB = 1 << 20
PART_BYTES = 16 * MIB  # as CI's multipart uploads: the ETag cannot decide
ONE_CONNECTION = {"READ_CONNECTIONS": "1"}


def measure(size: int) -> list[Figure]:
    md5_seconds = hashlib_seconds(size)
    md5_speed = size / md5_seconds
    cap = int(md5_speed / 4)
    with RemoteEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        key, warm_key = "output/ranged.wav", "output/warm.wav"
        emulator.put_pattern(BUCKET, key, size, PART_BYTES)
        emulator.put_pattern(BUCKET, warm_key, 3 * MIB, MIB)
        md5, warm_md5 = pattern_md5(size), pattern_md5(3 * MIB)
        args = (emulator.endpoint, key, md5, warm_key, warm_md5)
        uncapped = probe("ours", *args)
        emulator.limit_bandwidth(cap)
        capped = probe("ours", *args)
        single = probe("ours", *args, ONE_CONNECTION)
    mib = size / MIB
    limit = mib / md5_seconds
    label = f"{mib / 1024:g} GiB" if size >= 1 << 30 else f"{mib:g} MiB"
    capped_note = f"each connection capped at {cap / MIB:.0f} MiB/s, a quarter of MD5's speed"
    return [
        Figure(f"ranged verification, {label}, 4 connections capped", mib / capped["seconds"], "MiB/s",
               "hashlib.md5 in memory", limit, ">= 0.8",
               note=f"{capped_note}; READ_CONNECTIONS=4, READ_PART_MB=8; {capped['seconds']:.2f} s"),
        Figure(f"one-connection verification, {label}, capped", mib / single["seconds"], "MiB/s",
               "hashlib.md5 in memory", limit, note=f"{capped_note}; READ_CONNECTIONS=1: what one stream can do"),
        Figure(f"ranged peak memory growth, {label}", capped["growthKiB"] / 1024, "MiB", "bound",
               MEMORY_BOUND_MIB, "<= 1", note="VmHWM after minus VmRSS before, in a fresh process"),
        Figure(f"ranged verification, {label}, uncapped", mib / uncapped["seconds"], "MiB/s",
               "hashlib.md5 in memory", limit, ">= 0.9", note=f"{uncapped['seconds']:.2f} s"),
    ]
