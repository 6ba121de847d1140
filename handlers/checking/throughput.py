"""How fast this container hashes objects' content, learnt from the reads it has finished.

A warm SCF container serves many invocations; what its reads achieved is the best guess of
what the next one will. The figure starts at HASH_MIB_PER_SECOND (conservative), follows a
slower read at once (better to skip a hash that might have fitted than to start one that
cannot), and a faster one halfway, so one lucky read does not promise too much. A hash
skipped on the learnt figure alone (HASH_MIB_PER_SECOND would have fitted) moves it halfway
back: one slow moment delays an object by a retry or two, never for the container's life,
since a hash that is never started teaches nothing. Ranged
(parallel) reads and single-connection reads are learnt apart: they differ by the number of
connections. Nothing is kept across containers.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

MIB = 1 << 20
MIN_SAMPLE_BYTES = 8 * MIB  # smaller reads are mostly round trips: they say little about speed
MIN_SAMPLE_SECONDS = 0.01


@dataclass(frozen=True)
class HashEstimate:
    seconds: float
    mib_per_second: float
    measured: bool  # learnt from this container's reads, rather than HASH_MIB_PER_SECOND
    # At the fastest of HASH_MIB_PER_SECOND, the learnt figure and the fastest read this container
    # has seen. Only this may say that no invocation can hash the object: the learnt figure may
    # come from one slow moment.
    best_seconds: float | None = None
    best_basis: str = field(default="HASH_MIB_PER_SECOND", compare=False)  # which speed that is, for the reason

    @property
    def fastest(self) -> float:
        return self.seconds if self.best_seconds is None else min(self.seconds, self.best_seconds)

    def describe(self) -> str:
        basis = "as this container measured" if self.measured else "assumed until a read is measured"
        return f"{self.mib_per_second:,.0f} MiB/s ({basis})"


class HashThroughput:
    def __init__(self, start_mib_per_second: float):
        self._start = float(start_mib_per_second)
        self._learnt: dict[str, float] = {}
        self._fastest: dict[str, float] = {}  # the fastest read seen: what an object too large for good must exceed
        self._lock = threading.Lock()

    def estimate(self, size: int, kind: str) -> HashEstimate:
        with self._lock:
            rate, fastest = self._learnt.get(kind), self._fastest.get(kind, 0.0)
        measured = rate is not None
        rate = self._start if rate is None else rate
        best = max(rate, self._start, fastest)
        basis = "HASH_MIB_PER_SECOND" if best == self._start else "the fastest read this container has seen"
        return HashEstimate(size / (rate * MIB), rate, measured, size / (best * MIB), basis)

    def skipped(self, kind: str) -> None:
        """A hash was not started on this estimate: a learnt figure below HASH_MIB_PER_SECOND
        moves halfway back to it (see above)."""
        with self._lock:
            learnt = self._learnt.get(kind)
            if learnt is not None and learnt < self._start:
                self._learnt[kind] = learnt + (self._start - learnt) / 2

    def record(self, size: int, seconds: float, kind: str) -> None:
        if size < MIN_SAMPLE_BYTES or seconds < MIN_SAMPLE_SECONDS:
            return
        observed = size / MIB / seconds
        with self._lock:
            self._fastest[kind] = max(self._fastest.get(kind, 0.0), observed)
            previous = self._learnt.get(kind, self._start)
            if observed < previous:
                self._learnt[kind] = observed
            else:
                self._learnt[kind] = previous + (observed - previous) / 2
