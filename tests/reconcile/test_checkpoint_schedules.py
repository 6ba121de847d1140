"""Random schedules of the sweep's world, checked against the invariants of its state.

A schedule is a handful of CI jobs (created minutes apart; each delivered, lost, still running, or
failed; one or two outputs; some corrupt) and a list of steps: timer ticks with a short or a usual time
limit, two ticks at once in two containers, a slow COS, callbacks delivered late, running jobs that
finish, worker invocations SCF loses or delivers twice, and an operator deleting the checkpoint. Ticks
hand what they cannot finish to workers (the SCF emulator runs them).

After every step, the state the sweep keeps must be true:

- the checkpoint claims a job settled (listed and not held, or kept by id) only if it is: CI reports it
  failed, or its settled marker exists; `handedOff` names held jobs only;
- a settled marker exists only for a job whose every output carries that job's final verdict, and a
  `verified` tag only on bytes that hash to CI's MD5 (`mismatch` only on others);
- no lease is left behind by a tick that ended.

Then the world drains (running jobs finish, workers that SCF lost are given up by an operator's edit,
ticks run until nothing is left): every job CI reports as succeeded is settled and every output carries
its verdict; every invocation (ticks and workers) ended within its time limit.

RECONCILE_SCHEDULES sets the number of schedules (30 by default, about ten seconds); raise it for a long
run (RECONCILE_SCHEDULES=500).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.app import App
from handlers.intake.models import OutputObject
from handlers.reconcile import checkpoint as cp
from handlers.settings import Settings
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.cos import CosEmulator
from localcloud.scf import ScfEmulator
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, function_env, http_event, invoke
from tests.reconcile.jobs import CHINA, CI_TIME, STATE, TIMER
from tests.samples import REGION, job_xml

pytestmark = pytest.mark.slow  # random schedules of the sweep's state

SCHEDULES = int(os.environ.get("RECONCILE_SCHEDULES", "30"))
NAME = "ci-callback-verifier"
QUEUE = "p" + "0" * 32
SHORT, USUAL = 5000, 12000  # a tick's time limit, ms: a short tick checks about two jobs, then hands off
FATES = ("delivered", "lost", "lost", "running", "failed")
_numbers = itertools.count()


@dataclass(frozen=True)
class JobSpec:
    minutes_ago: int
    fate: str
    outputs: int
    corrupt: bool


@dataclass(frozen=True)
class Step:
    kind: str  # tick | overlap | slow | fast | deliver | finish | lose-worker | twice-worker | forget
    container: int = 0
    short: bool = False
    job: int = 0


jobs_st = st.lists(st.builds(JobSpec, st.integers(2, 50), st.sampled_from(FATES), st.integers(1, 2), st.booleans()),
                   min_size=2, max_size=8)
steps_st = st.lists(st.one_of(
    st.builds(Step, st.just("tick"), st.integers(0, 1), st.booleans()),
    st.builds(Step, st.just("overlap"), st.just(0), st.booleans()),
    st.builds(Step, st.sampled_from(["slow", "fast", "lose-worker", "twice-worker", "forget"])),
    st.builds(Step, st.sampled_from(["deliver", "finish"]), job=st.integers(0, 7)),
), min_size=1, max_size=7)


@dataclass
class Job:
    job_id: str
    created: datetime
    spec: JobSpec
    body: bytes
    detail: dict[str, Any]
    data: dict[str, bytes]  # key -> the bytes CI wrote
    expected: dict[str, str]  # key -> CI's MD5
    state: str  # as CI reports it now


class Workers:
    """The function as SCF runs it asynchronously: what it receives, and the events SCF loses."""

    def __init__(self, app: App):
        self.app = app
        self.drop = 0
        self.twice = 0
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: dict[str, Any]) -> Any:
        with self.lock:
            self.received.append(event)
            lost, again = self.drop > 0, self.twice > 0
            self.drop, self.twice = max(0, self.drop - 1), max(0, self.twice - 1)
        if lost:
            return {"lost": True}
        result = self.app.handle(event, context)
        if again:  # delivered twice: SCF's at-least-once
            self.app.handle(event, context)
        return result


@dataclass
class Example:
    cos: CosEmulator
    scf: ScfEmulator
    bucket: str
    jobs: list[Job]
    apps: list[App] = field(default_factory=list)
    workers: Workers | None = None
    ticks: list[tuple[float, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def checkpoint_key(self) -> str:
        return f"{STATE}sweep/{QUEUE}/VoiceSeparate.checkpoint"

    def env(self) -> dict[str, str]:
        return {**function_env(self.cos), "ALLOWED_BUCKETS": self.bucket, "RECONCILE_BUCKETS": self.bucket,
                "DEFAULT_REGION": REGION, "SCF_ENDPOINT": self.scf.endpoint, "CONCURRENCY": "4",
                "COS_TIMEOUT_SECONDS": "2"}

    def tick(self, container: int, short: bool) -> None:
        limit = SHORT if short else USUAL
        context = {"function_name": NAME, "namespace": "default", "function_version": "$LATEST",
                   "request_id": f"tick-{next(_numbers)}", "time_limit_in_ms": limit}
        started = time.monotonic()
        self.apps[container].handle(TIMER, context)
        took = time.monotonic() - started
        self.ticks.append((took, limit / 1000))


def new_example(cos: CosEmulator, scf: ScfEmulator, specs: list[JobSpec]) -> Example:
    number = next(_numbers)
    bucket = f"rec{number}-1250000000"
    cos.create_bucket(bucket, region=REGION)
    now = datetime.now(CHINA)
    jobs = []
    for index, spec in enumerate(specs):
        job_id = f"j{number:015d}{index:016d}"
        created = (now - timedelta(minutes=spec.minutes_ago, seconds=index)).replace(microsecond=0)
        ended = created + timedelta(seconds=20)
        data, expected = {}, {}
        for output in range(spec.outputs):
            key = f"out/{index}/{output}.wav"
            written = f"{bucket} job {index} output {output}".encode() * 50
            data[key] = written + (b"?" if spec.corrupt and output == 0 else b"")
            expected[key] = hashlib.md5(written).hexdigest()
            if spec.fate != "failed":
                cos.put_object(bucket, key, data[key], last_modified=ended.timestamp())
        times = tuple(t.strftime(CI_TIME) for t in (created, created + timedelta(seconds=1), ended))
        body = job_xml(md5s=expected, names=[], job_id=job_id, bucket=bucket, times=times)
        detail = xmltodict.parse(body)["Response"]["JobsDetail"]
        state = {"running": "Running", "failed": "Failed"}.get(spec.fate, "Success")
        jobs.append(Job(job_id, created, spec, body, detail, data, expected, state))
        register(cos, bucket, jobs[-1])
    example = Example(cos, scf, bucket, jobs)
    example.apps = [App(Settings.from_env(example.env())) for _ in range(2)]
    example.workers = Workers(App(Settings.from_env(example.env())))
    scf.register_function(NAME, example.workers, timeout=USUAL / 1000, retries=2, retry_delay=0.05)
    for job in jobs:
        if job.spec.fate == "delivered":
            invoke(example.apps[0], http_event(job.body))
    return example


def register(cos: CosEmulator, bucket: str, job: Job) -> None:
    detail = dict(job.detail)
    detail["State"] = job.state
    if job.state != "Success":
        detail["EndTime"] = "-"
        detail["Code"] = "Failed" if job.state == "Failed" else ""
    cos.register_job(bucket, detail)


def run_step(example: Example, step: Step) -> None:
    cos = example.cos
    if step.kind == "tick":
        example.tick(step.container, step.short)
    elif step.kind == "overlap":  # two containers' ticks at the same moment (SCF's timer is asynchronous)
        threads = [threading.Thread(target=example.tick, args=(c, step.short)) for c in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elif step.kind == "slow":  # every tag write takes a while: a short tick cannot finish
        cos.add_fault(method="PUT", query="tagging", delay=0.15, times=None)
    elif step.kind == "fast":
        cos.clear_faults()
    elif step.kind == "lose-worker":
        assert example.workers is not None
        example.workers.drop += 1
    elif step.kind == "twice-worker":
        assert example.workers is not None
        example.workers.twice += 1
    elif step.kind == "forget":  # an operator deletes the checkpoint: the next tick starts from the window
        example.apps[0].store.delete(OutputObject(example.bucket, REGION, example.checkpoint_key, None))
    elif step.kind in ("deliver", "finish") and step.job < len(example.jobs):
        job = example.jobs[step.job]
        if step.kind == "finish" and job.state == "Running":
            job.state = "Success"
            register(cos, example.bucket, job)
        elif step.kind == "deliver" and job.state == "Success":
            invoke(example.apps[step.job % 2], http_event(job.body))
    example.scf.wait_idle(timeout=60)


# --- the invariants ---------------------------------------------------------------------------------

def marker(example: Example, job: Job) -> bool:
    return example.cos.object_bytes(example.bucket, f"{STATE}settled/{job.job_id}") is not None


def truly_settled(example: Example, job: Job) -> bool:
    return job.state == "Failed" or (job.state == "Success" and marker(example, job))


def state_problems(example: Example) -> list[str]:
    problems = []
    cos, bucket = example.cos, example.bucket
    body = cos.object_bytes(bucket, example.checkpoint_key)
    if body is not None:
        checkpoint = cp.from_json(body)
        for job in example.jobs:
            created = job.created.astimezone(timezone.utc)
            if cp.is_settled(checkpoint, job.job_id, created) and not truly_settled(example, job):
                problems.append(f"checkpoint claims {job.job_id} ({job.state}, {job.spec}) settled")
        known = {job.job_id for job in example.jobs}
        if not set(checkpoint.held) <= known:
            problems.append(f"checkpoint holds jobs CI never listed: {set(checkpoint.held) - known}")
        if not set(checkpoint.handed_off) <= set(checkpoint.held):
            problems.append("checkpoint: handedOff names jobs it does not hold")
    for job in example.jobs:
        tagged = {key: cos.tags(bucket, key) or {} for key in job.data}
        for key, tags in tagged.items():
            verdict = tags.get(VERIFY_TAG)
            if verdict is None:
                continue
            if tags.get(JOB_TAG) != job.job_id:
                problems.append(f"{key}: tagged for {tags.get(JOB_TAG)}, written by {job.job_id}")
            good = hashlib.md5(cos.object_bytes(bucket, key) or b"").hexdigest() == job.expected[key]
            if (verdict == "verified") != good or verdict not in ("verified", "mismatch"):
                problems.append(f"{key}: tagged {verdict}, its bytes {'match' if good else 'differ from'} CI's MD5")
        if marker(example, job) and not all(t.get(JOB_TAG) == job.job_id and t.get(VERIFY_TAG) for t in tagged.values()):
            problems.append(f"{job.job_id}: a settled marker, but outputs without its verdict: {tagged}")
    leases = [k for k in cos.keys(bucket, f"{STATE}sweep/") if k.endswith(".lease")]
    if leases:
        problems.append(f"a lease left behind: {leases}")
    return problems


def drain(example: Example) -> None:
    example.cos.clear_faults()
    for job in example.jobs:
        if job.state == "Running":
            job.state = "Success"
            register(example.cos, example.bucket, job)
    assert example.workers is not None
    example.workers.drop = example.workers.twice = 0
    for _ in range(6):
        # SCF lost some workers: their jobs stay in their hands until their time would have run out;
        # an operator ends that at once (README: repairing the checkpoint).
        body = example.cos.object_bytes(example.bucket, example.checkpoint_key)
        if body is not None:
            document = json.loads(body)
            document["handedOff"] = {}
            example.cos.put_object(example.bucket, example.checkpoint_key, json.dumps(document).encode())
        example.tick(0, short=False)
        example.scf.wait_idle(timeout=120)
        if all(truly_settled(example, job) for job in example.jobs if job.state != "Failed"):
            break


def final_problems(example: Example) -> list[str]:
    problems = []
    for job in example.jobs:
        if job.state == "Success" and not marker(example, job):
            problems.append(f"{job.job_id} ({job.spec}) never settled")
        if job.state == "Success":
            for key in job.data:
                verdict = (example.cos.tags(example.bucket, key) or {}).get(VERIFY_TAG)
                if verdict not in ("verified", "mismatch"):
                    problems.append(f"{key} of {job.job_id}: no verdict ({verdict})")
    for took, limit in example.ticks:
        if took >= limit:
            problems.append(f"a tick took {took:.2f} s of its {limit} s")
    for invocation in example.scf.invocations:
        if invocation.status != "succeeded":
            problems.append(f"worker {invocation.request_id} {invocation.status}: {(invocation.error or '')[-300:]}")
        elif invocation.finished_at - invocation.started_at >= USUAL / 1000:
            problems.append(f"worker {invocation.request_id} ran past its limit")
    return problems


@pytest.fixture(scope="module")
def world():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as cos, \
            ScfEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, region=REGION) as scf:
        yield cos, scf


@settings(max_examples=SCHEDULES, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=jobs_st, steps=steps_st)
def test_random_schedules_keep_the_sweeps_state_true(world, specs, steps):
    cos, scf = world
    cos.clear_faults()
    scf.clear()
    example = new_example(cos, scf, specs)
    try:
        for step in steps:
            run_step(example, step)
            problems = state_problems(example)
            assert not problems, f"after {step}: {problems}\nsteps: {steps}\njobs: {specs}"
        drain(example)
        problems = state_problems(example) + final_problems(example)
        assert not problems, f"at rest: {problems}\nsteps: {steps}\njobs: {specs}"
    finally:
        cos.clear_faults()
        for app in [*example.apps, *([example.workers.app] if example.workers else [])]:
            app.close()
