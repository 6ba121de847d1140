"""Round trips on the critical path: wall time under a fixed per-request delay, over that delay.

The emulator (in a process of its own) delays every request by DELAY; the function then
spends about DELAY per sequential round trip, so wall time / DELAY counts them. Every run
starts from untagged objects, so each has its tag write to do.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

from bench.figures import Figure
from bench.naive import NaiveVerifier
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
    jobs_detail,
    object_body,
    output_keys,
    quiet_stdout,
    verdicts,
)
from handlers.app import App
from handlers.settings import Settings

DELAY = 0.02  # seconds added to every request
# Per object, what issue 11 requires (COS has no conditional tagging): HEAD beside the tag read,
# the tag write, then the read-back (our tags still there?) beside a HEAD (still the version
# checked?).
DEPTH = 3
REQUESTS_PER_OBJECT = 5  # HEAD, GET ?tagging, PUT ?tagging, GET ?tagging, HEAD
PER_OBJECT = f"limit ({REQUESTS_PER_OBJECT} per object)"
MS = 1000


class Workload:
    def __init__(self, emulator: RemoteEmulator, outputs: int, prefix: str):
        self.emulator = emulator
        self.keys = output_keys(outputs, prefix)
        md5s = {key: emulator.put_object(BUCKET, key, object_body(i)) for i, key in enumerate(self.keys)}
        self.body = callback_xml(md5s)

    def run(self, invoke: Callable[[bytes], list[str]]) -> Run:
        """One callback, from untagged objects."""
        for key in self.keys:
            self.emulator.set_tags(BUCKET, key, {})
        self.emulator.clear_requests()
        started, cpu = time.perf_counter(), time.process_time()
        found = invoke(self.body)
        run = Run(time.perf_counter() - started, time.process_time() - cpu, len(self.emulator.requests))
        if found != ["verified"] * len(self.keys):
            raise RuntimeError(f"expected every object verified, got {sorted(set(found))}")
        return run

    def median(self, invoke: Callable[[bytes], list[str]], runs: int) -> Run:
        return sorted((self.run(invoke) for _ in range(runs)), key=lambda run: run.seconds)[runs // 2]


class Run(NamedTuple):
    seconds: float
    cpu_seconds: float  # this process's: the emulator runs in its own
    requests: int  # COS and CI requests the emulator received


def function(app: App) -> Callable[[bytes], list[str]]:
    def invoke(body: bytes) -> list[str]:
        with quiet_stdout():
            return verdicts(app.handle(http_event(body), CONTEXT))
    return invoke


def measure(outputs: int, runs: int, naive_runs: int) -> list[Figure]:
    with RemoteEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        pair = Workload(emulator, 2, "output/pair")
        many = Workload(emulator, outputs, "output/many")
        emulator.register_job(BUCKET, jobs_detail(pair.body))
        app = App(Settings.from_env(function_env(emulator.endpoint)))
        app_with_ci = App(Settings.from_env(function_env(emulator.endpoint, VERIFY_WITH_CI="true")))
        # A sweep configured (as RECONCILE_BUCKETS defaults to ALLOWED_BUCKETS in SCF's region): each settled
        # job's marker is written after its tags (handlers/operations/settled.py).
        app_marked = App(Settings.from_env(function_env(emulator.endpoint, DEFAULT_REGION=REGION,
                                                        RECONCILE_BUCKETS=BUCKET)))
        naive = NaiveVerifier(emulator.endpoint, SECRET_ID, SECRET_KEY, TOKEN, REGION).handle
        try:
            emulator.add_fault(delay=DELAY, service=None, times=None)
            # Warm containers: connections open and caches filled. Under the delay, so that the pool
            # holds as many connections as the function keeps busy (the emulator's listen backlog
            # is short: a burst of new connections would wait for SYN retransmits, a second each).
            for invoke in (function(app), function(app_with_ci), function(app_marked), naive):
                pair.run(invoke)
            many.run(function(app))
            ours_pair = pair.median(function(app), runs)
            ours_ci = pair.median(function(app_with_ci), runs)
            ours_marked = pair.median(function(app_marked), runs)
            ours_many = many.median(function(app), runs)
            naive_pair = pair.median(naive, naive_runs)
            naive_many = many.median(naive, naive_runs)
            concurrency = app.settings.concurrency
        finally:
            app.close()
            app_with_ci.close()
            app_marked.close()
    many_limit = math.ceil(outputs / concurrency) * DEPTH
    return [
        Figure("critical path, 2 outputs", ours_pair.seconds / DELAY, "round trips",
               "limit (HEAD ‖ tag read, tag write, tag read ‖ HEAD)", DEPTH, "<= 1.3",
               note=f"{ours_pair.seconds * MS:.0f} ms with {DELAY * MS:.0f} ms added to every request"),
        Figure("critical path, 2 outputs, CI cross-check on", ours_ci.seconds / DELAY, "round trips",
               "limit (CI job read, then the above)", DEPTH + 1, "<= 1.3",
               note="VERIFY_WITH_CI=true, the production default: the job is read from CI first"),
        Figure("critical path, 2 outputs, sweep configured", ours_marked.seconds / DELAY, "round trips",
               "limit (the above, then the job's settled marker)", DEPTH + 1, "<= 1.3",
               note="RECONCILE_BUCKETS set: the marker that tells the sweep the job is done, one PUT per job"),
        Figure(f"critical path, {outputs} outputs", ours_many.seconds / DELAY, "round trips",
               f"limit (⌈{outputs}/{concurrency}⌉ × {DEPTH})", many_limit, "<= 1.3",
               note=f"{ours_many.seconds * MS:.0f} ms; CONCURRENCY={concurrency}"),
        Figure(f"function CPU per COS request, {outputs} outputs", ours_many.cpu_seconds / ours_many.requests * MS,
               "ms", "budget at the limit (limit time / requests)", many_limit * DELAY / ours_many.requests * MS,
               note="above the budget, the callback is bound by CPU (one GIL), not by round trips"),
        Figure("COS requests, 2 outputs", ours_pair.requests, "requests", PER_OBJECT,
               2 * REQUESTS_PER_OBJECT, "<= 1"),
        Figure(f"COS requests, {outputs} outputs", ours_many.requests, "requests", PER_OBJECT,
               outputs * REQUESTS_PER_OBJECT, "<= 1"),
        Figure("callback time, 2 outputs", ours_pair.seconds * MS, "ms", "naive (sequential)",
               naive_pair.seconds * MS, inverted=True, note="ratio: how many times faster than the naive verifier"),
        Figure(f"callback time, {outputs} outputs", ours_many.seconds * MS, "ms", "naive (sequential)",
               naive_many.seconds * MS, ">= 5", inverted=True,
               note="ratio: how many times faster than the naive verifier"),
    ]
