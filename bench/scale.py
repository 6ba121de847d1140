"""The reconciliation sweep at scale (issue 20): the checkpointed sweep beside today's, in one run.

Against the emulator in a process of its own, every request delayed DELAY (a round trip), production
defaults (VERIFY_WITH_CI on, CONCURRENCY 16, a 60 s timeout, a 60-minute window, a 10-minute timer),
jobs of two outputs:

- steady state: WINDOW jobs in the window, NEW of them since the last tick, every callback delivered.
  Requests and function CPU per job in the window for one tick, and the tick's time. The checkpointed
  sweep's previous tick is run first, ten minutes in the past (Sweep.run's `now`), as the timer would have.
- catch-up: LOST of WINDOW jobs whose callbacks were lost. The checkpointed sweep ticks with its workers
  (SCF's Invoke, the SCF emulator running the function in this process) until every job is verified;
  today's sweep runs one tick, and the ticks it needs are extrapolated from what that tick verified.
- the most jobs a minute each can keep up with, at 60 s and 900 s, from the steady-state tick times:
  the checkpointed tick's cost grows with the new jobs of a timer period, today's with the window's.

The workers share this process's CPU (one interpreter lock, two CPUs for everything here) where SCF gives
each invocation its own: the catch-up time is an upper bound.
"""
from __future__ import annotations

import json
import math
import time
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from bench import sweep_before
from bench.figures import Figure
from bench.remote import RemoteEmulator
from bench.workload import (
    BUCKET,
    REGION,
    SECRET_ID,
    SECRET_KEY,
    TOKEN,
    callback_xml,
    function_env,
    jobs_detail,
    object_body,
    quiet_stdout,
)
from handlers.app import App
from handlers.deadline import Deadline
from handlers.reconcile.jobs import job_runner, outside_allow_lists
from handlers.reconcile.sweep import Sweep
from handlers.settings import Settings
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.scf import ScfEmulator

DELAY = 0.02
TIMEOUT = 60  # the shipped timeout (serverless.yml)
LONGEST = 900  # SCF's longest for an event function
PERIOD_MINUTES = 10  # the shipped timer
WINDOW_MINUTES = 60  # the shipped RECONCILE_WINDOW_MINUTES
TARGET_REQUESTS = 0.35  # issue 20: requests per job in the window, steady state
NAME = "ci-callback-verifier"
CHINA = timezone(timedelta(hours=8))
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "", "Message": ""}
CATCH_NEW, CATCH_OLD = "bench-catchup-1250000000", "bench-catchold-1250000000"


@dataclass(frozen=True)
class Size:
    window: int
    new: int
    lost: int


FULL = Size(window=3000, new=300, lost=1500)
QUICK = Size(window=200, new=20, lost=100)


def job_id(bucket: str, n: int) -> str:
    return f"j{zlib.crc32(bucket.encode()):010d}{n:021d}"


def seed(emulator: RemoteEmulator, bucket: str, count: int, delivered: set[int], now: datetime,
         newest_minutes: float) -> None:
    """`count` jobs created one after the other up to `newest_minutes` ago, spread over the window; those
    in `delivered` as their callback left them (verified tags and the settled marker)."""
    spacing = (WINDOW_MINUTES - newest_minutes - 2) * 60 / count
    for n in range(count):
        created = now - timedelta(minutes=newest_minutes) - timedelta(seconds=spacing * (count - n))
        md5s = {}
        for output in range(2):
            key = f"output/{n:05d}/{output}.mp3"
            md5s[key] = emulator.put_object(bucket, key, object_body(n * 2 + output),
                                            last_modified=(created + timedelta(seconds=20)).timestamp())
            if n in delivered:
                emulator.set_tags(bucket, key, {VERIFY_TAG: "verified", JOB_TAG: job_id(bucket, n)})
        detail = jobs_detail(callback_xml(md5s, job_id(bucket, n)))
        detail["Input"]["BucketId"] = bucket
        detail["Operation"]["MediaResult"]["OutputFile"]["Bucket"] = bucket
        detail["CreationTime"] = created.strftime(CI_TIME)
        detail["StartTime"] = (created + timedelta(seconds=1)).strftime(CI_TIME)
        detail["EndTime"] = (created + timedelta(seconds=20)).strftime(CI_TIME)
        emulator.register_job(bucket, detail)
        if n in delivered:
            emulator.put_object(bucket, f".ci-callback-verifier/settled/{job_id(bucket, n)}",
                                json.dumps({"jobId": job_id(bucket, n), "outcome": "verified"}).encode())


def env_for(emulator: RemoteEmulator, bucket: str, **more: str) -> dict[str, str]:
    return function_env(emulator.endpoint, ALLOWED_BUCKETS=bucket, RECONCILE_BUCKETS=bucket, DEFAULT_REGION=REGION,
                        VERIFY_WITH_CI="true", RECONCILE_WINDOW_MINUTES=str(WINDOW_MINUTES), **more)


@dataclass(frozen=True)
class Tick:
    seconds: float
    cpu_seconds: float
    requests: int
    report: Any


def measured(emulator: RemoteEmulator, run: Any) -> Tick:
    emulator.clear_requests()
    started, cpu = time.perf_counter(), time.process_time()
    with quiet_stdout():
        report = run()
    return Tick(time.perf_counter() - started, time.process_time() - cpu, len(emulator.requests), report)


def checkpointed_tick(app: App, seconds: float, now: datetime | None = None) -> Any:
    """The timer's sweep, as handlers/triggers/timer.py builds it (no worker: none is needed when the
    callbacks were delivered), at `now`."""
    pipeline, settings = app.pipeline, app.settings
    deadline = Deadline.after(seconds)
    deadline = Deadline(deadline.at, seconds)
    sweep = Sweep(settings, job_runner(pipeline, "bench"), pipeline.ci_jobs.bound(deadline),
                  pipeline.store.bound(deadline), f"bench-{time.monotonic()}", lambda job: outside_allow_lists(settings, job))
    return sweep.run(deadline, now)


def steady_state(emulator: RemoteEmulator, size: Size) -> tuple[Tick, Tick, Tick]:
    now = datetime.now(CHINA)
    # The new jobs came after the last tick, ten minutes ago; the others before it.
    seed(emulator, BUCKET, size.window - size.new, set(range(size.window)), now, newest_minutes=PERIOD_MINUTES + 3)
    app = App(Settings.from_env(env_for(emulator, BUCKET)))
    with quiet_stdout():
        checkpointed_tick(app, TIMEOUT, now.astimezone(timezone.utc) - timedelta(minutes=PERIOD_MINUTES))
    seed_new(emulator, size, now)
    settings = Settings.from_env(env_for(emulator, BUCKET))
    before = App(replace(settings, reconcile_buckets=()))  # today's pipeline wrote no marker
    try:
        emulator.add_fault(delay=DELAY, service=None, times=None)
        ours = measured(emulator, lambda: checkpointed_tick(app, TIMEOUT))
        idle = measured(emulator, lambda: checkpointed_tick(app, TIMEOUT))  # nothing new: what a tick costs anyway
        today = measured(emulator, lambda: sweep_before.tick(before.pipeline, settings, _deadline(TIMEOUT), "bench"))
    finally:
        emulator.clear_faults()
        app.close()
        before.close()
    if ours.report.already_done + ours.report.settled_before < size.new or today.report.already_done < size.window:
        raise RuntimeError(f"steady state: not every job was found done ({ours.report.as_dict()}, "
                           f"{today.report.as_dict()})")
    return ours, idle, today


def seed_new(emulator: RemoteEmulator, size: Size, now: datetime) -> None:
    """The jobs of the last ten minutes, their callbacks delivered."""
    offset = size.window - size.new
    spacing = (PERIOD_MINUTES - 3) * 60 / size.new
    for i in range(size.new):
        n = offset + i
        created = now - timedelta(minutes=3) - timedelta(seconds=spacing * (size.new - i))
        md5s = {}
        for output in range(2):
            key = f"output/{n:05d}/{output}.mp3"
            md5s[key] = emulator.put_object(BUCKET, key, object_body(n * 2 + output),
                                            last_modified=(created + timedelta(seconds=20)).timestamp())
            emulator.set_tags(BUCKET, key, {VERIFY_TAG: "verified", JOB_TAG: job_id(BUCKET, n)})
        detail = jobs_detail(callback_xml(md5s, job_id(BUCKET, n)))
        detail["CreationTime"] = created.strftime(CI_TIME)
        detail["EndTime"] = (created + timedelta(seconds=20)).strftime(CI_TIME)
        emulator.register_job(BUCKET, detail)
        emulator.put_object(BUCKET, f".ci-callback-verifier/settled/{job_id(BUCKET, n)}", b"{}")


def _deadline(seconds: float) -> Deadline:
    return Deadline(Deadline.after(seconds).at, seconds)


@dataclass(frozen=True)
class CatchUp:
    ticks: int
    seconds: float  # from the first tick until every job was verified
    invocations: int  # attempts: ticks, and workers with SCF's retries of them
    past_limit: int  # attempts that ran past their time limit, and workers that never succeeded
    longest: float  # seconds, of any invocation


def catch_up(emulator: RemoteEmulator, size: Size) -> tuple[CatchUp, float]:
    """(the checkpointed sweep's catch-up, today's ticks to verify the same backlog)."""
    now = datetime.now(CHINA)
    delivered = set(range(size.lost, size.window))  # the oldest `lost` callbacks were lost
    for bucket in (CATCH_NEW, CATCH_OLD):
        emulator.create_bucket(bucket, REGION)
        seed(emulator, bucket, size.window, delivered, now, newest_minutes=3)
    with ScfEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, region=REGION) as scf:
        env = env_for(emulator, CATCH_NEW, SCF_ENDPOINT=scf.endpoint)
        tick_app, worker_app = App(Settings.from_env(env)), App(Settings.from_env(env))
        settings = Settings.from_env(env_for(emulator, CATCH_OLD))
        before = App(replace(settings, reconcile_buckets=()))
        attempts: list[float] = []  # each worker attempt's duration (an invocation's record spans its retries)

        def worker(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return worker_app.handle(event, context)
            finally:
                attempts.append(time.perf_counter() - started)

        scf.register_function(NAME, worker, timeout=TIMEOUT, retries=2, retry_delay=0.05)
        context = {"function_name": NAME, "namespace": "default", "function_version": "$LATEST",
                   "time_limit_in_ms": TIMEOUT * 1000}
        # sys.stdout is the process's: one redirection for the whole phase, workers' threads included.
        with quiet_stdout():
            caught, today = _catch_up_runs(emulator, scf, size, tick_app, context, before, settings, attempts)
        for app in (tick_app, worker_app, before):
            app.close()
    verified_today = sum(1 for r in today.checked if r.outcome.value == "verified")
    if _unsettled(emulator, CATCH_NEW, size.lost):
        raise RuntimeError(f"catch-up: {_unsettled(emulator, CATCH_NEW, size.lost)} jobs still unverified")
    ticks_today = math.ceil(size.lost / verified_today) if verified_today else math.inf
    return caught, ticks_today


def _catch_up_runs(emulator: RemoteEmulator, scf: ScfEmulator, size: Size, tick_app: App, context: dict[str, Any],
                   before: App, settings: Settings, attempts: list[float]) -> tuple[CatchUp, Any]:
    try:
        emulator.add_fault(delay=DELAY, service=None, times=None)
        started = time.perf_counter()
        durations, ticks = [], 0
        while _unsettled(emulator, CATCH_NEW, size.lost) and ticks < 6:
            ticks += 1
            tick_started = time.perf_counter()
            tick_app.handle(TIMER, {**context, "request_id": f"bench-tick-{ticks}"})
            durations.append(time.perf_counter() - tick_started)
            scf.wait_idle(timeout=TIMEOUT * 8)
        seconds = time.perf_counter() - started
        workers = scf.invocations
        durations += attempts
        past = sum(1 for d in durations if d >= TIMEOUT) + sum(1 for i in workers if i.status != "succeeded")
        today = sweep_before.tick(before.pipeline, settings, _deadline(TIMEOUT), "bench-today")
    finally:
        emulator.clear_faults()
    return CatchUp(ticks, seconds, len(durations), past, max(durations)), today


def _unsettled(emulator: RemoteEmulator, bucket: str, lost: int) -> int:
    settled = {k.rsplit("/", 1)[-1] for k in emulator.keys(bucket, ".ci-callback-verifier/settled/")}
    return sum(1 for n in range(lost) if job_id(bucket, n) not in settled)


def sustained(tick_seconds: float, fixed_seconds: float, jobs: int, minutes: int, timeout: int) -> float:
    """Jobs a minute one tick can keep up with, 90 % of the timeout usable: a tick costs `fixed_seconds`
    and `(tick_seconds - fixed_seconds) / jobs` per job of the last `minutes` (the checkpointed sweep's
    grow with the new jobs of a timer period, today's with the window's)."""
    per_job = max(tick_seconds - fixed_seconds, 1e-9) / jobs
    return max(0.0, timeout * 0.9 - fixed_seconds) / per_job / minutes


def measure(size: Size) -> list[Figure]:
    with RemoteEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        ours, idle, today = steady_state(emulator, size)
        caught, ticks_today = catch_up(emulator, size)
    window = size.window
    per_job, per_job_today = ours.requests / window, today.requests / window
    label = f"{window:,} jobs, {size.new:,} new"
    steady = f"steady state ({label}), {DELAY * 1000:.0f} ms a request"
    figures = [
        Figure(f"sweep: requests per job in the window, {steady}", per_job, "requests", "today's sweep",
               per_job_today, f"<= {TARGET_REQUESTS / per_job_today:.3f}",
               note=f"issue 20's target: at most {TARGET_REQUESTS} requests per job; {ours.requests} requests in all"),
        Figure(f"sweep: function CPU per job in the window, {steady}", ours.cpu_seconds / window * 1000, "ms",
               "today's sweep", today.cpu_seconds / window * 1000),
        Figure(f"sweep: tick time, {steady}", ours.seconds * 1000, "ms", "today's sweep", today.seconds * 1000),
        Figure(f"sweep: ticks to verify {size.lost:,} lost callbacks among {window:,} jobs, {TIMEOUT} s timeout",
               caught.ticks, "ticks", "today's sweep (from one tick)", ticks_today,
               note=f"issue 20's target: within two ticks; with the workers they started: {caught.invocations} invocations, "
                    f"{caught.past_limit} past their limit (longest {caught.longest:.1f} s); "
                    f"{caught.seconds:.0f} s from the first tick until all were verified"),
        Figure(f"sweep: invocations past their {TIMEOUT} s limit during that catch-up", caught.past_limit,
               "invocations", "limit", 0),
    ]
    for timeout in (TIMEOUT, LONGEST):
        figures.append(Figure(
            f"sweep: most jobs a minute one tick keeps up with, {timeout} s timeout",
            sustained(ours.seconds, idle.seconds, size.new, PERIOD_MINUTES, timeout), "jobs/min", "today's sweep",
            sustained(today.seconds, 0.0, window, WINDOW_MINUTES, timeout),
            note=f"from the steady-state tick times (a tick with nothing new: {idle.seconds * 1000:.0f} ms): a tick "
                 f"every {PERIOD_MINUTES} min, a {WINDOW_MINUTES}-min window, callbacks delivered; lost ones beyond "
                 "what a tick checks go to workers"))
    return figures


if __name__ == "__main__":  # python -m bench.scale [--quick | --jobs N]: this section alone, or at N jobs
    import sys

    from bench.figures import table
    size = QUICK if "--quick" in sys.argv else FULL
    if "--jobs" in sys.argv:
        jobs = int(sys.argv[sys.argv.index("--jobs") + 1])
        size = Size(window=jobs, new=jobs // 10, lost=jobs // 2)
    figures = measure(size)
    print(table(figures))
    for figure in figures:
        if figure.note:
            print(f"- {figure.name}: {figure.note}")
