"""VERIFY_MODE=server against VERIFY_MODE=full, in one run: a callback with N multipart outputs (their ETags
never decide, so every one is hashed), each mode from untagged objects under the same per-request delay.
Figures: bytes read through the function per verified byte (server: CI hashes, target 0), requests,
round trips (wall time / the delay) and wall time. Then one 128 MiB output, too large for CI's synchronous
hash: its FileHashCode job and callback, bytes through the function again.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from bench.critical_path import DELAY, MS, function
from bench.figures import Figure
from bench.remote import RemoteEmulator
from bench.workload import (
    BUCKET,
    CONTEXT,
    REGION,
    SECRET_ID,
    SECRET_KEY,
    TOKEN,
    callback_xml,
    function_env,
    http_event,
    object_body,
    output_keys,
    quiet_stdout,
    verdicts,
)
from handlers.app import App
from handlers.settings import Settings

OBJECT_BYTES = 256 << 10
PART_BYTES = 64 << 10  # four parts: a multipart ETag


class Run(NamedTuple):
    seconds: float
    requests: int
    object_bytes_read: int  # bytes of GET Object answers: what passed through the function


def bytes_read(requests: list[Any], sizes: dict[str, int]) -> int:
    """The bytes GET Object sent back (ranges counted as asked), not CI's hashes nor tag reads."""
    total = 0
    for record in requests:
        if record.service != "cos" or record.method != "GET" or not record.key or record.status not in (200, 206):
            continue
        if {"tagging", "ci-process"} & set(record.query) or record.key not in sizes:
            continue  # tag reads, CI's hashes, and the function's own records (hash-job ledgers) are no output
        wanted = (record.headers.get("range") or "").removeprefix("bytes=")
        if wanted and "-" in wanted:
            start, _, end = wanted.partition("-")
            total += (int(end) if end else sizes[record.key] - 1) - int(start or 0) + 1
        else:
            total += sizes[record.key]
    return total


def _run(emulator: RemoteEmulator, keys: list[str], body: bytes, sizes: dict[str, int],
         invoke: Callable[[bytes], list[str]]) -> Run:
    for key in keys:
        emulator.set_tags(BUCKET, key, {})
    emulator.clear_requests()
    started = time.perf_counter()
    found = invoke(body)
    seconds = time.perf_counter() - started
    if found != ["verified"] * len(keys):
        raise RuntimeError(f"expected every object verified, got {sorted(set(found))}")
    requests = emulator.requests
    return Run(seconds, len(requests), bytes_read(requests, sizes))


def measure(outputs: int) -> list[Figure]:
    with RemoteEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        keys = output_keys(outputs, "output/server")
        md5s, sizes = {}, {}
        for i, key in enumerate(keys):
            data = object_body(i, OBJECT_BYTES)
            emulator.put_object(BUCKET, key, data, part_size=PART_BYTES)
            md5s[key], sizes[key] = hashlib.md5(data).hexdigest(), len(data)
        body = callback_xml(md5s)
        full = App(Settings.from_env(function_env(emulator.endpoint, VERIFY_MODE="full")))
        server = App(Settings.from_env(function_env(emulator.endpoint, VERIFY_MODE="server")))
        try:
            emulator.add_fault(delay=DELAY, service=None, times=None)
            for app in (full, server):  # warm: connections open
                _run(emulator, keys, body, sizes, function(app))
            ran_full = _run(emulator, keys, body, sizes, function(full))
            ran_server = _run(emulator, keys, body, sizes, function(server))
        finally:
            full.close()
            server.close()
    verified = sum(sizes.values())
    job = _file_job_bytes()
    return [
        Figure(f"server mode: bytes through the function per verified byte, {outputs} multipart outputs",
               ran_server.object_bytes_read / verified, "bytes/byte", "full mode",
               ran_full.object_bytes_read / verified, "<= 0",
               note=f"CI's synchronous filehash; full mode read {ran_full.object_bytes_read} bytes"),
        Figure("server mode: bytes through the function per verified byte, one 128 MiB output (FileHashCode job)",
               job, "bytes/byte", "full mode (reads every byte)", 1.0, "<= 0",
               note="the job's TaskFinish callback, confirmed with GET /file_jobs, finishes the object"),
        Figure(f"server mode: requests, {outputs} multipart outputs", ran_server.requests, "requests",
               "full mode", ran_full.requests,
               note="as many: per object the content GET becomes CI's filehash, the rest is alike"),
        Figure(f"server mode: round trips, {outputs} multipart outputs", ran_server.seconds / DELAY,
               "round trips", "full mode", ran_full.seconds / DELAY,
               note=f"wall time / the {DELAY * MS:.0f} ms added to every request"),
        Figure(f"server mode: callback time, {outputs} multipart outputs", ran_server.seconds * MS, "ms",
               "full mode", ran_full.seconds * MS,
               note=f"{OBJECT_BYTES >> 10} KiB objects in {PART_BYTES >> 10} KiB parts; at these sizes the "
                    "function's own hashing is cheap, the gain is in bytes not carried"),
    ]


def _file_job_bytes() -> float:
    """Bytes through the function per verified byte for one output CI hashes in a FileHashCode job,
    callback included (an in-process emulator: its callbacks are held and delivered by hand)."""
    from localcloud.cos import CosEmulator
    from localcloud.cos.file_jobs import SYNC_LIMIT, FileJobCallback

    held: list[FileJobCallback] = []
    with CosEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        emulator.callback_sink = held.append
        chunk = hashlib.sha256(b"big").digest() * (1 << 15)
        digest = hashlib.md5()
        for _ in range(SYNC_LIMIT >> 20):
            digest.update(chunk)
        key = "output/server/big.wav"
        emulator.put_object(BUCKET, key, (chunk for _ in range(SYNC_LIMIT >> 20)), part_size=8 << 20)
        app = App(Settings.from_env(function_env(emulator.endpoint, VERIFY_MODE="server")))
        try:
            with quiet_stdout():
                first = verdicts(app.handle(http_event(callback_xml({key: digest.hexdigest()})), CONTEXT))
                emulator.wait_for_file_jobs()
                done = [verdicts(app.handle({**http_event(c.body), "headers": {"Content-Type": c.content_type}},
                                            CONTEXT)) for c in held]
        finally:
            app.close()
        if first != ["pending"] or done != [["verified"]]:
            raise RuntimeError(f"expected pending then verified, got {first} then {done}")
        return bytes_read(emulator.requests, {key: SYNC_LIMIT}) / SYNC_LIMIT
