"""Streaming verification of a big multipart object (its ETag is no MD5, so the content decides):
throughput against hashlib.md5 over the same bytes in memory, and the peak memory it takes,
for the function and for the naive verifier, each in a fresh process (bench/stream_probe.py)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

from bench.figures import Figure
from bench.remote import RemoteEmulator, pattern, pattern_md5
from bench.workload import BUCKET, REGION, ROOT, SECRET_ID, SECRET_KEY, TOKEN

MIB = 1 << 20
PART_BYTES = 16 * MIB
MEMORY_BOUND_MIB = 64


def hashlib_seconds(size: int) -> float:
    """MD5 over `size` bytes already in memory: the most any verifier can do on this CPU."""
    blocks = list(pattern(size))
    best = float("inf")
    for _ in range(2):
        digest = hashlib.md5()
        started = time.perf_counter()
        for block in blocks:
            digest.update(block)
        best = min(best, time.perf_counter() - started)
    return best


def probe(implementation: str, endpoint: str, key: str, md5: str, warm_key: str, warm_md5: str,
          env: dict[str, str] | None = None) -> dict:
    command = [sys.executable, "-m", "bench.stream_probe", implementation, endpoint, key, md5, warm_key, warm_md5,
               json.dumps(env or {})]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{implementation} probe failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(size: int) -> list[Figure]:
    with RemoteEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        key, warm_key = "output/big.wav", "output/warm.wav"
        etag = emulator.put_pattern(BUCKET, key, size, PART_BYTES)
        emulator.put_pattern(BUCKET, warm_key, 3 * MIB, MIB)
        assert "-" in etag, "a multipart ETag, which cannot decide"
        md5, warm_md5 = pattern_md5(size), pattern_md5(3 * MIB)
        limit = hashlib_seconds(size)
        ours = probe("ours", emulator.endpoint, key, md5, warm_key, warm_md5)
        naive = probe("naive", emulator.endpoint, key, md5, warm_key, warm_md5)
    mib = size / MIB
    label = f"{mib / 1024:g} GiB" if size >= 1 << 30 else f"{mib:g} MiB"
    return [
        Figure(f"streaming verification, {label}", mib / ours["seconds"], "MiB/s",
               "hashlib.md5 in memory", mib / limit, ">= 0.7",
               note=f"whole callback (HEAD, tag read, streamed GET, tag write), {ours['seconds']:.2f} s"),
        Figure(f"peak memory growth, {label}", ours["growthKiB"] / 1024, "MiB", "bound", MEMORY_BOUND_MIB, "<= 1",
               note="VmHWM after minus VmRSS before, in a fresh process"),
        Figure(f"naive verification, {label}", mib / naive["seconds"], "MiB/s", "ours", mib / ours["seconds"],
               note="the body read whole, then hashed"),
        Figure(f"naive peak memory growth, {label}", naive["growthKiB"] / 1024, "MiB", "ours",
               ours["growthKiB"] / 1024),
    ]

