"""The COS emulator in a process of its own, driven from the benchmark.

Measuring the function beside an in-process emulator would charge the function for the
emulator's CPU (one GIL for both) and mix the emulator's memory into the function's. The
emulator's command line (`python -m localcloud.cos`) can neither inject faults nor read the
request log, so the benchmark runs the same `CosEmulator` in a child process and forwards
method calls to it over a pipe.
"""
from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterator
from typing import Any

from localcloud.cos import CosEmulator

PATTERN_BYTES = 1 << 20


def pattern(size: int) -> Iterator[bytes]:
    """`size` bytes of a fixed pseudo-random 1 MiB block, repeated (MD5 runs at the same speed
    on any bytes; no disk or memory is spent on a source file)."""
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(PATTERN_BYTES // 32))
    full, rest = divmod(size, PATTERN_BYTES)
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


def pattern_md5(size: int) -> str:
    digest = hashlib.md5()
    for chunk in pattern(size):
        digest.update(chunk)
    return digest.hexdigest()


class RemoteEmulator:
    """`CosEmulator`'s methods and properties, run in a child process; `put_pattern` stores
    `pattern(size)` there, uploaded in parts of `part_size` (a multipart ETag)."""

    def __init__(self, secret_id: str, secret_key: str, token: str):
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, secret_id, secret_key, token), daemon=True,
                                        name="cos-emulator")
        self._process.start()
        self.endpoint: str = self._pipe.recv()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    @property
    def requests(self) -> list:
        return self._call("requests", (), {})

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        self._pipe.send((name, args, kwargs))
        ok, result = self._pipe.recv()
        if not ok:
            raise result
        return result

    def close(self) -> None:
        if self._process.is_alive():
            self._pipe.send(None)
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()

    def __enter__(self) -> RemoteEmulator:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _serve(pipe, secret_id: str, secret_key: str, token: str) -> None:
    with CosEmulator(secret_id, secret_key, token) as emulator:
        pipe.send(emulator.endpoint)
        while True:
            command = pipe.recv()
            if command is None:
                return
            name, args, kwargs = command
            try:
                if name == "put_pattern":
                    bucket, key, size, part_size = args
                    result: Any = emulator.put_object(bucket, key, pattern(size), part_size=part_size)
                else:
                    attribute = getattr(emulator, name)
                    result = attribute(*args, **kwargs) if callable(attribute) else attribute
                pipe.send((True, result))
            except Exception as exc:  # handed back to the caller, raised there
                pipe.send((False, exc))
