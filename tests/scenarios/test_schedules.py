"""Random schedules across every mode, checked at rest against the invariants of DESIGN.md.

test_concurrency.py drives the inline path (deliveries, faults, user writes). This test mixes
everything else the function keeps state for: a schedule is a configuration — VERIFY_MODE
auto, full or server; every ACTION_VERIFIED x ACTION_FAILED combination of tag, move,
tag,move and none; destinations with or without {jobId}; audit reports (REPORT_PREFIX) and
notifications (NOTIFY_URL, to a local Standard Webhooks receiver) always on — and a list of
steps against one CI job J1 with three outputs (`plain`, verified by its ETag; `big`, uploaded
in parts, so it needs a hash; `corrupt`, a mismatch):

- deliveries of J1's callback: once, several at once in different containers, replays,
  with a fault injected into one COS request (a 503, a slow request, a request held past
  the invocation's deadline), beside a sweep tick, beside a FileHashCode callback, beside a
  user writing tags;
- FileHashCode callbacks (VERIFY_MODE=server; the synchronous filehash refuses the outputs
  the schedule sends to a file job, as CI refuses objects from 128 MB): delivered when a step
  says (so late), twice, twice at once, or never; the first file jobs may end `Failed`;
- timer ticks (the reconciliation sweep);
- a later job J2 rewriting one of J1's outputs, and J2's own callback;
- a user adding tags between steps.

Then the schedule is drained as the world would: every file job ends, its callback is
delivered or lost as the schedule says, CI sends a callback answered 503 again, and the
sweep ticks until nothing changes. At rest, from the emulator's state, the audit reports,
the answers and the webhook receiver's log:

- bytes: every version J1 or J2 wrote still exists (at its key or where a move took it),
  unless the other job's rewrite replaced it; a user's tag written between steps is kept;
- tags: `ci-verify`/`ci-job` only on bytes that job wrote (never on the other job's version),
  `verified` only on bytes that hash to CI's MD5 and `mismatch` only on others, never
  `pending`; `ci-hash-job` only beside `ci-job`, naming a file job of that job on that version;
- FileHashCode jobs: none on a version its job did not write; per version at most
  HASH_JOBS_PER_VERSION (plus one per delivery that ran at once: COS has no conditional
  write); each in the version's record (`hash-jobs/`), which lists no job CI did not run and
  keeps a bare reservation only where the README's window allows it; an output CI cannot
  hash (every job Failed) is `error`, never left `pending`;
- the audit report: there, its outcome the combination of its entries, no `pending`, and
  for every output a verdict and ETag true of the object where it is now, and of its tags
  (or of the version it names, when the other job replaced it since);
- notifications: once per job and problem (README), unless the invocations that announced it
  ran at the same moment; the job's record of what was announced lists exactly the messages
  sent (but where two invocations recorded at once);
- the sweep's records: a settled marker is never deleted and marks only a job whose every
  output is final; a checkpoint calls settled only jobs with a marker, and names the newest
  job writing each output; no lease outlives its tick; no record of a kind this test does not
  know (every piece of state the function keeps has its invariant here);
- every invocation ended within its time limit;
- a replay of J1's callback at rest changes no object, starts no file job, announces nothing,
  and answers what its report and the tags say.

SCHEDULES_ALL_MODES sets the number of schedules (200 by default, about two minutes on an
idle machine); SCHEDULES_ALL_MODES=2000, say, for a long run. The defects the schedules found
are reduced to examples at the end, each of which failed before its fix. A defect found and
not yet fixed gets such an example and an entry in KNOWN_DEFECTS, which sets its symptoms aside
so that `test_random_schedules_in_every_mode` keeps hunting for others, while
`test_random_schedules_without_exemptions` (xfail then) sets nothing aside.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

import pytest
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.app import App
from handlers.checking.outcome import combined, entry_standing
from handlers.checking.pending import HASH_JOB_TAG
from handlers.checking.ticket import decode
from handlers.settings import Settings
from handlers.storage.tags import JOB_TAG, VERIFY_TAG
from localcloud.cos import CosEmulator
from localcloud.cos.file_jobs import FileJobCallback
from localcloud.webhook import WebhookReceiver
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, function_env, http_event
from tests.samples import REGION, job_xml

SCHEDULES = int(os.environ.get("SCHEDULES_ALL_MODES", "200"))
NOTIFY_SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
REPORTS = "reports/"
HASH_JOBS_PER_VERSION = 2
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}
LIMIT_MS = 10_000  # an ordinary invocation's time limit
HANG_LIMIT_MS = 2_000  # an invocation one of whose requests COS holds past its deadline
HANG_SECONDS = 2.0
ACTIONS = ("tag", "move", "tag,move", "none")
OUTPUTS = ("plain", "big", "corrupt")
CONTAINERS = 3
FAULTS = {  # one COS request of one output meets it (test_concurrency.py has the same kinds)
    "head 503": dict(method="HEAD", status=503), "tag read 503": dict(method="GET", query="tagging", status=503),
    "tag write 503": dict(method="PUT", query="tagging", status=503), "copy 503": dict(method="PUT", query="!", status=503),
    "delete 503": dict(method="DELETE", query="!", status=503), "slow head": dict(method="HEAD", delay=0.05),
    "filehash 503": dict(method="GET", query="ci-process", status=503),
}
_numbers = count(1)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def ci_time(moment: datetime) -> str:
    return moment.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S%z")


# --- the schedules ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    mode: str  # VERIFY_MODE
    verified: str  # ACTION_VERIFIED
    failed: str  # ACTION_FAILED
    job_template: bool  # destinations verified/{jobId}/{key}, quarantine/{jobId}/{key} (else the plain prefixes)
    big_good: bool  # whether `big` holds CI's bytes
    by_file_job: tuple[str, ...]  # server mode: outputs the synchronous hash refuses (a FileHashCode job hashes them)
    failing_file_jobs: int  # the first N FileHashCode jobs end Failed (99: every one)
    file_job_delay: float  # seconds each FileHashCode job waits before it hashes
    holds: bool = False  # whether a `hang` step has COS hold a request (each costs a second: a quarter of them)

    def env(self) -> dict[str, str]:
        return {"VERIFY_MODE": self.mode, "ACTION_VERIFIED": self.verified, "ACTION_FAILED": self.failed,
                "VERIFIED_PREFIX": "verified/{jobId}/{key}" if self.job_template else "verified/",
                "QUARANTINE_PREFIX": "quarantine/{jobId}/{key}" if self.job_template else "quarantine/"}

    def destination(self, verdict: str, job_id: str, key: str) -> str:
        prefix = "verified" if verdict == "verified" else "quarantine"
        return f"{prefix}/{job_id}/{key}" if self.job_template else f"{prefix}/{key}"

    def actions(self, verdict: str) -> set[str]:
        chosen = self.verified if verdict == "verified" else self.failed if verdict in ("mismatch",
                                                                                           "unverifiable") else "none"
        return set(chosen.split(",")) - {"none"}

    @property
    def tags_anything(self) -> bool:
        return "tag" in self.actions("verified") | self.actions("mismatch")


@dataclass(frozen=True)
class UserOp:
    after_ms: int
    output: str


@dataclass(frozen=True)
class Step:
    kind: str  # deliver | hash | sweep | rewrite | deliver-j2 | user-tag | hang
    containers: tuple[int, ...] = (0,)  # deliveries run at once, by container
    fault: str | None = None
    hash_action: str = "once"  # hash: once | twice | at-once | drop
    with_sweep: bool = False  # deliver: a timer tick at the same moment
    with_hash: bool = False  # deliver: the oldest held FileHashCode callback at the same moment
    output: str = "plain"  # rewrite, user-tag
    user: tuple[UserOp, ...] = ()  # deliver: a user adding tags meanwhile


containers = st.lists(st.integers(0, CONTAINERS - 1), min_size=1, max_size=3).map(tuple)
user_ops = st.lists(st.builds(UserOp, st.integers(0, 30), st.sampled_from(OUTPUTS)), max_size=2).map(tuple)
_weighted = [  # (weight, strategy): a held request costs a second of wall time, so it is rarer
    (6, st.builds(Step, st.just("deliver"), containers, st.one_of(st.none(), st.sampled_from(sorted(FAULTS))),
                  with_sweep=st.booleans(), with_hash=st.booleans(), user=user_ops)),
    (4, st.builds(Step, st.just("hash"), hash_action=st.sampled_from(["once", "twice", "at-once", "drop"]))),
    (2, st.builds(Step, st.just("sweep"), containers.map(lambda c: c[:2]))),
    (2, st.builds(Step, st.just("rewrite"), output=st.sampled_from(OUTPUTS))),
    (2, st.builds(Step, st.just("deliver-j2"), containers)),
    (2, st.builds(Step, st.just("user-tag"), output=st.sampled_from(OUTPUTS))),
    (1, st.builds(Step, st.just("hang"), containers.map(lambda c: c[:1]), st.sampled_from(["delay", "trickle"]))),
]
steps = st.one_of(*[strategy for weight, strategy in _weighted for _ in range(weight)])
configs = st.builds(
    Config, st.sampled_from(["auto", "full", "server", "server"]), st.sampled_from(ACTIONS), st.sampled_from(ACTIONS),
    st.booleans(), st.booleans(), st.sampled_from([("big",), ("big",), ("big", "corrupt")]),
    st.sampled_from([0, 0, 1, 99]), st.sampled_from([0.0, 0.0, 0.3]), st.sampled_from([False, False, False, True]))
# The fate of each FileHashCode callback still held when the schedule is drained, in turn.
fates = st.lists(st.sampled_from(["once", "once", "twice", "lost"]), max_size=3).map(tuple)
schedules = st.tuples(configs, st.lists(steps, min_size=1, max_size=7), fates)


# --- the world ------------------------------------------------------------------------------------

@dataclass
class World:
    emulator: CosEmulator
    receiver: WebhookReceiver
    run: Run | None = None

    def sink(self, callback: FileJobCallback) -> None:
        run = self.run
        if run is not None:
            run.file_job_finished(callback)


@pytest.fixture(scope="module")
def world():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emulator, \
            WebhookReceiver(secret=NOTIFY_SECRET) as receiver:
        here = World(emulator, receiver)
        emulator.callback_sink = here.sink
        yield here


@dataclass
class Invocation:
    what: str  # "J1", "J2", "hash <file job>", "sweep"
    request_id: str
    started: float
    finished: float
    limit_ms: int
    status: int  # HTTP status; 0 for a timer tick
    answer: dict[str, Any]

    def overlaps(self, other: Invocation) -> bool:
        return self.started < other.finished and other.started < self.finished


@dataclass
class Version:
    """Bytes a job wrote at an output key: what its tags and the reports may say about them."""

    job_id: str
    output: str  # the key it was written at
    data: bytes
    etag: str
    expected_md5: str  # what CI reported for it
    destroyed: bool = False  # rewritten at its key by the other job (its bytes gone with it)


@dataclass
class UserTag:
    name: str
    data: bytes  # the version it was put on


@dataclass
class Run:
    """One schedule against a bucket of its own, with CONTAINERS warm containers of one configuration."""

    world: World
    config: Config
    number: int
    apps: list[App] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    finished_jobs: list[FileJobCallback] = field(default_factory=list)  # every file job's callback, as CI made it
    held: list[FileJobCallback] = field(default_factory=list)  # made, not yet delivered
    versions: list[Version] = field(default_factory=list)
    user_tags: list[UserTag] = field(default_factory=list)
    last_status: dict[str, int] = field(default_factory=dict)  # job -> the status of its last callback
    j2: Version | None = None
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.bucket = f"sched{self.number}-1250000000"
        self.j1 = f"j{self.number:015d}{1:016d}"
        self.j2_id = f"j{self.number:015d}{2:016d}"
        self.emulator.create_bucket(self.bucket, region=REGION)
        env = function_env(self.emulator, **self.config.env(), ALLOWED_BUCKETS=self.bucket, DEFAULT_REGION=REGION,
                           VERIFY_WITH_CI="true", REPORT_PREFIX=REPORTS, NOTIFY_FORMAT="json",
                           NOTIFY_URL=self.world.receiver.url(f"/{self.bucket}"), NOTIFY_SECRET=NOTIFY_SECRET,
                           HASH_CALLBACK_URL="https://fn.example/cb?token=test-token", CONCURRENCY="4",
                           COS_TIMEOUT_SECONDS="3", HASH_JOBS_PER_VERSION=str(HASH_JOBS_PER_VERSION), LOG_LEVEL="ERROR")
        self.apps = [App(Settings.from_env(env)) for _ in range(CONTAINERS)]
        self.emulator.file_job_delay = self.config.file_job_delay
        self.j1_body = self._write_j1()
        self.failures: dict[str, int] = {}
        self.settled_seen: set[str] = set()
        if self.config.mode == "server" and self.config.failing_file_jobs:
            for name in self.config.by_file_job:  # as CI fails a job on an archived object
                self.emulator.fail_file_jobs(self.bucket, f"out/{name}")

    @property
    def emulator(self) -> CosEmulator:
        return self.world.emulator

    def close(self) -> None:
        for app in self.apps:
            app.close()

    # --- setting up ---------------------------------------------------------------------------

    def _write_j1(self) -> bytes:
        ended = datetime.now(timezone.utc) - timedelta(minutes=10)  # long before J2's rewrite
        written = ended.timestamp() - 2
        tag = f"{self.bucket} {self.number}".encode()
        good_big = bytes(range(256)) * 256 + tag  # 64 KiB, in 16 KiB parts: its ETag is no MD5
        data = {"plain": b"plain output " * 300 + tag, "big": good_big if self.config.big_good else good_big[::-1],
                "corrupt": b"not what CI wrote " * 200 + tag}
        reported = {"plain": md5(data["plain"]), "big": md5(good_big), "corrupt": md5(b"what CI wrote" + tag)}
        for name in OUTPUTS:
            key = f"out/{name}"
            etag = self.emulator.put_object(self.bucket, key, data[name], last_modified=written,
                                            part_size=16 * 1024 if name == "big" else None)
            self.versions.append(Version(self.j1, key, data[name], etag, reported[name]))
        times = tuple(ci_time(ended - timedelta(seconds=s)) for s in (6, 5, 0))
        body = job_xml({f"out/{name}": reported[name] for name in OUTPUTS}, [], job_id=self.j1,
                       bucket=self.bucket, times=times)
        detail = xmltodict.parse(body)["Response"]["JobsDetail"]
        self.emulator.register_job(self.bucket, detail)
        self.j1_created = _ci_parse(detail["CreationTime"])
        self._refuse_sync_hash()
        return body

    def _refuse_sync_hash(self) -> None:
        """CI's synchronous hash refuses objects from 128 MB (400 InvalidArgument, as the emulator answers
        one that large): for the outputs the schedule sends to a FileHashCode job, it refuses these."""
        if self.config.mode == "server" and self.config.by_file_job:
            names = "|".join(re.escape(name) for name in self.config.by_file_job)
            self.emulator.add_fault(method="GET", key=re.compile(f"^out/({names})$"), query="ci-process", status=400,
                                    code="InvalidArgument", times=None)

    def _fault(self, name: str | None, **override: Any) -> None:
        if name is None and not override:
            return
        spec = {**(FAULTS[name] if name else {}), **override}
        self.emulator.add_fault(key=re.compile(r"^(verified/|quarantine/)?(j\d+/)?out/(plain|big|corrupt)$"), **spec)

    def _clear_faults(self) -> None:
        self.emulator.clear_faults()
        self._refuse_sync_hash()

    # --- invocations ----------------------------------------------------------------------------

    def call(self, container: int, event: dict[str, Any], what: str, limit_ms: int = LIMIT_MS) -> Invocation:
        request_id = f"{self.bucket}-r{next(_numbers)}"
        context = {"request_id": request_id, "time_limit_in_ms": limit_ms}
        started = time.monotonic()
        if event is TIMER:
            result = self.apps[container].handle(TIMER, context)
            status, answer = 0, result
        else:
            event = {**event, "queryString": {"token": "test-token"}}
            result = self.apps[container].handle(event, context)
            status, answer = result["statusCode"], json.loads(result["body"])
        done = Invocation(what, request_id, started, time.monotonic(), limit_ms, status, answer)
        with self.lock:
            self.invocations.append(done)
            if status and not what.startswith("hash"):
                self.last_status[what] = status
        return done

    def deliver_j1(self, container: int, limit_ms: int = LIMIT_MS) -> Invocation:
        return self.call(container, http_event(self.j1_body), "J1", limit_ms)

    def deliver_j2(self, container: int) -> Invocation | None:
        if self.j2 is None:
            return None
        return self.call(container, http_event(self.j2_body), "J2")

    def deliver_hash(self, callback: FileJobCallback, container: int = 0) -> Invocation:
        return self.call(container, http_event(callback.body, callback.content_type), f"hash {callback.job_id}")

    def sweep(self, container: int = 0) -> Invocation:
        return self.call(container, TIMER, "sweep")

    def at_once(self, *calls: Callable[[], object]) -> None:
        errors: list[BaseException] = []

        def run(call: Callable[[], object]) -> None:
            try:
                call()
            except BaseException as exc:  # re-raised below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # --- FileHashCode jobs ----------------------------------------------------------------------

    def file_job_finished(self, callback: FileJobCallback) -> None:
        detail = xmltodict.parse(callback.body)["Response"]["JobsDetail"]
        with self.lock:
            self.finished_jobs.append(callback)
            self.held.append(callback)
            if detail["State"] == "Failed":
                key = detail["Input"]["Object"]
                self.failures[key] = self.failures.get(key, 0) + 1
                if self.failures[key] >= self.config.failing_file_jobs:  # the object is restored: CI hashes it
                    self.emulator.fail_file_jobs(self.bucket, key, None)

    def next_held(self) -> FileJobCallback | None:
        self.emulator.wait_for_file_jobs()
        with self.lock:
            return self.held.pop(0) if self.held else None

    # --- the steps ------------------------------------------------------------------------------

    def step(self, step: Step) -> None:
        self.log.append(repr(step))
        try:
            self._step(step)
        finally:
            self.settled_seen |= set(self.emulator.keys(self.bucket, f"{REPORTS}settled/"))

    def _step(self, step: Step) -> None:
        if step.kind == "deliver":
            calls: list[Callable[[], object]] = [lambda c=c: self.deliver_j1(c) for c in step.containers]
            if step.with_sweep:
                calls.append(lambda: self.sweep(CONTAINERS - 1))
            if step.with_hash:
                held = self.next_held()
                if held is not None:
                    calls.append(lambda: self.deliver_hash(held, 1))
            if step.user:
                started = time.monotonic()
                calls.append(lambda: self.concurrent_user(step.user, started))
            self._fault(step.fault)
            try:
                self.at_once(*calls)
            finally:
                self._clear_faults()
        elif step.kind == "hash":
            held = self.next_held()
            if held is None or step.hash_action == "drop":
                return
            if step.hash_action == "at-once":
                self.at_once(lambda: self.deliver_hash(held, 0), lambda: self.deliver_hash(held, 1))
            else:
                self.deliver_hash(held)
                if step.hash_action == "twice":
                    self.deliver_hash(held, 2)
        elif step.kind == "sweep":  # two timer ticks at once when the period is shorter than a tick
            self.at_once(*[lambda c=c: self.sweep(c) for c in step.containers])
        elif step.kind == "rewrite":
            self.rewrite(step.output)
        elif step.kind == "deliver-j2":
            if self.j2 is not None:
                self.at_once(*[lambda c=c: self.deliver_j2(c) for c in step.containers])
        elif step.kind == "user-tag":
            self.quiet_user_tag(step.output)
        elif step.kind == "hang":
            # COS holds one HEAD past the invocation's deadline, or sends its answer a byte at a time (a
            # HEAD: the request the function gives up on changes nothing when COS carries it out later).
            if not self.config.holds or any(i.limit_ms == HANG_LIMIT_MS for i in self.invocations):  # at most one
                self.deliver_j1(step.containers[0])
                return
            held = dict(delay=HANG_SECONDS) if step.fault == "delay" else dict(trickle=0.2)
            self._fault(None, method="HEAD", **held)
            try:
                self.deliver_j1(step.containers[0], HANG_LIMIT_MS)
            finally:
                self._clear_faults()

    def rewrite(self, output: str) -> None:
        """J2, a later job, writes its own bytes at one of J1's output keys (once per schedule)."""
        if self.j2 is not None:
            return
        key = f"out/{output}"
        data = f"J2's {output} {self.bucket}".encode() * 3000  # in parts: its ETag is no MD5
        before = self.emulator.object_bytes(self.bucket, key)
        etag = self.emulator.put_object(self.bucket, key, data, part_size=16 * 1024)
        for version in self.versions:
            if version.output == key and version.data == before:
                version.destroyed = True
        self.j2 = Version(self.j2_id, key, data, etag, md5(data))
        self.versions.append(self.j2)
        self.j2_body = job_xml({key: md5(data)}, [], job_id=self.j2_id, bucket=self.bucket)
        detail = xmltodict.parse(self.j2_body)["Response"]["JobsDetail"]
        self.emulator.register_job(self.bucket, detail)
        self.j2_created = _ci_parse(detail["CreationTime"])

    def places(self, version: Version) -> list[str]:
        """Where the version's bytes are now: its key, or where a move took them."""
        keys = [version.output, *(self.config.destination(v, version.job_id, version.output)
                                  for v in ("verified", "mismatch"))]
        return [k for k in keys if self.emulator.object_bytes(self.bucket, k) == version.data]

    def quiet_user_tag(self, output: str) -> None:
        """A user adds a tag to what sits at the output (or where it was moved), while nothing else runs."""
        for version in self.versions:
            if version.output != f"out/{output}" or version.destroyed:
                continue
            for key in self.places(version)[:1]:
                tags = self.emulator.tags(self.bucket, key) or {}
                if sum(name.startswith("u") for name in tags) >= 2:
                    continue
                name = f"u{next(_numbers)}"
                self.emulator.set_tags(self.bucket, key, {**tags, name: "yes"})
                self.user_tags.append(UserTag(name, version.data))

    def concurrent_user(self, ops: tuple[UserOp, ...], started: float) -> None:
        """A user's tool beside the deliveries: read the tags, add one, write them back."""
        for op in sorted(ops, key=lambda o: o.after_ms):
            time.sleep(max(0.0, started + op.after_ms / 1000 - time.monotonic()))
            key = f"out/{op.output}"
            tags = self.emulator.tags(self.bucket, key)
            if tags is None or sum(name.startswith("u") for name in tags) >= 2:
                continue
            try:
                self.emulator.set_tags(self.bucket, key, {**tags, f"u{next(_numbers)}": "yes"})
            except KeyError:
                continue  # moved away meanwhile

    # --- at rest --------------------------------------------------------------------------------

    def owes(self, what: str) -> bool:
        """Whether CI still has to deliver the callback again: an answer 503 that no later delivery
        answered 200 made good."""
        answers = [i for i in self.invocations if i.what == what and i.status]
        return any(not any(a.status == 200 and a.started >= f.finished for a in answers)
                   for f in answers if f.status == 503)

    def deliver_held(self, turns) -> None:
        while (held := self.next_held()) is not None:
            fate = next(turns, "once")
            if fate == "lost":
                continue
            for _ in range(2 if fate == "twice" else 1):
                for _ in range(3):  # CI delivers a callback answered 503 again
                    if self.deliver_hash(held).status != 503:
                        break

    def redeliver_owed(self) -> None:
        for job, deliver in (("J1", lambda: self.deliver_j1(0)), ("J2", lambda: self.deliver_j2(0))):
            for _ in range(3):
                if not self.owes(job):
                    break
                deliver()

    def drain(self, fates: tuple[str, ...]) -> None:
        """What the world does after the schedule: every file job ends and its callback is delivered
        (or lost, as `fates` says), CI delivers a callback answered 503 again, and the sweep ticks
        until nothing is left to do; the last word is the callbacks of the jobs the last tick started."""
        turns = iter(fates)
        for _ in range(5):
            jobs_before = len(self.finished_jobs)
            self.deliver_held(turns)
            self.redeliver_owed()
            self.sweep()
            self.emulator.wait_for_file_jobs()
            with self.lock:
                settled = not self.held and len(self.finished_jobs) == jobs_before
            if settled:
                break
        self.deliver_held(iter(()))
        self.redeliver_owed()
        self.emulator.wait_for_file_jobs()


# --- the invariants ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileJob:
    job_id: str
    key: str
    state: str
    job: str  # the media job its UserData names
    etag: str  # the version it was started for


def file_jobs(run: Run) -> list[FileJob]:
    found = []
    for callback in run.finished_jobs:
        detail = xmltodict.parse(callback.body)["Response"]["JobsDetail"]
        ticket = decode((detail.get("Operation") or {}).get("UserData"))
        found.append(FileJob(callback.job_id, detail["Input"]["Object"], detail["State"],
                             ticket.job_id if ticket else "", ticket.etag if ticket else ""))
    return found


def concurrency_peak(invocations: list[Invocation]) -> int:
    return max((sum(1 for o in invocations if o.started <= i.started < o.finished) for i in invocations), default=1)


def blind_to_moves(config: Config, verdict: str) -> bool:
    """A move without our tags and without {jobId} in the destination cannot be recognised later:
    a replay or the sweep then reports the output `missing` (README, Moving results)."""
    actions = config.actions(verdict)
    return "move" in actions and "tag" not in actions and not config.job_template


def hash_jobs_on(run: Run, version: Version, state: str) -> list[str]:
    return [j.job_id for j in file_jobs(run) if (j.key, j.etag) == (version.output, version.etag) and j.state == state]


def unhashable(run: Run, version: Version) -> bool:
    """Whether CI failed every FileHashCode job the bound allows on this version (an archived object), and
    hashed it in none: it is then `error`, for good (README, Server-side hashing)."""
    return (len(hash_jobs_on(run, version, "Failed")) >= HASH_JOBS_PER_VERSION
            and not hash_jobs_on(run, version, "Success") and version.output in run.places(version))


def entry_problems(run: Run, version: Version, entry: dict[str, Any], where: str) -> list[str]:
    """Whether one object entry (of an answer or a report) is true of the output it names."""
    config, key = run.config, version.output
    verdict, etag, actions = entry.get("verdict"), entry.get("etag"), entry.get("actions") or []
    said = f"{where}: {key} {verdict} (ETag {etag}, {actions})"
    places = run.places(version)
    right = "verified" if md5(version.data) == version.expected_md5 else "mismatch"
    if not places:  # its bytes are gone: the other job rewrote the key
        if verdict in ("superseded", "missing"):
            return [] if etag is None or etag != version.etag else [f"{said}: names the ETag of bytes that are gone"]
        if verdict == right and etag == version.etag:
            return []  # what was found about the version it names, before the other job replaced it
        return [f"{said}: the output's bytes were replaced by another job's"]
    if verdict in ("missing", "superseded") and blind_to_moves(config, right) and key not in places:
        return []  # documented: the move cannot be recognised without our tag or {jobId}
    if verdict == "error" and hash_jobs_on(run, version, "Failed") and hash_jobs_on(run, version, "Success"):
        return [f"{said}: error although CI hashed it (FileHashCode job "
                f"{hash_jobs_on(run, version, 'Success')[0]} succeeded)"]
    if verdict == "error" and unhashable(run, version):
        tags = run.emulator.tags(run.bucket, key) or {}
        return [f"{said}: CI cannot hash it, yet it is tagged {tags}"] if tags.get(VERIFY_TAG) == "pending" else []
    if verdict != right:
        return [f"{said}: its bytes are at {places} and make it {right}"]
    moved = [a.split(":", 1)[1] for a in actions if a.startswith("moved:")]
    place = moved[0] if moved else key
    if place not in places:
        return [f"{said}: its bytes are at {places}, not at {place}"]
    if entry.get("actionFailed"):  # its tag or move needs another try (another job's object in the way)
        return []
    info = run.emulator.object_info(run.bucket, place)
    problems = []
    if info is None or info["etag"] != etag:
        problems.append(f"{said}: {place} has ETag {info and info['etag']}")
    if "move" in config.actions(right) and not moved and not entry.get("actionFailed"):
        problems.append(f"{said}: {right} and ACTION says move, but it was not moved")
    tags = run.emulator.tags(run.bucket, place) or {}
    if "tag" in config.actions(right) and "tag-skipped" not in actions:
        if (tags.get(VERIFY_TAG), tags.get(JOB_TAG)) != (right, version.job_id):
            problems.append(f"{said}: {place} is tagged {tags}")
    elif tags.get(VERIFY_TAG) not in (None, right) and tags.get(JOB_TAG) == version.job_id:
        problems.append(f"{said}: no tag action for {right}, yet {place} is tagged {tags}")
    return problems


def record(run: Run, key: str) -> Any:
    body = run.emulator.object_bytes(run.bucket, key)
    return None if body is None else json.loads(body)


def report_of(run: Run, job_id: str) -> dict[str, Any] | None:
    return record(run, f"{REPORTS}{job_id}.json")


def tag_problems(run: Run) -> list[str]:
    """Ours only on bytes the job they name wrote, true of them, never `pending` at rest."""
    problems = []
    em, bucket = run.emulator, run.bucket
    by_bytes = {v.data: v for v in run.versions}
    jobs = {job.job_id: job for job in file_jobs(run)}
    for key in em.keys(bucket):
        if key.startswith(REPORTS):
            continue
        tags, data = em.tags(bucket, key) or {}, em.object_bytes(bucket, key) or b""
        if not {VERIFY_TAG, JOB_TAG, HASH_JOB_TAG} & set(tags):
            continue
        owner = by_bytes.get(data)
        job, verdict = tags.get(JOB_TAG), tags.get(VERIFY_TAG)
        if owner is None or owner.job_id != job:
            problems.append(f"{key}: tagged {tags}, but {job or 'no job'} did not write these bytes "
                            f"({owner.job_id if owner else 'nobody known'} did)")
            continue
        if verdict is None:
            pass  # ci-job (and ci-hash-job, the record of who hashed it) without a verdict claims nothing
        elif verdict not in ("verified", "mismatch"):
            problems.append(f"{key}: tagged {tags} at rest")
        elif (verdict == "verified") != (md5(data) == owner.expected_md5):
            problems.append(f"{key}: tagged {verdict}, but its MD5 {'is' if verdict == 'mismatch' else 'is not'} CI's")
        if HASH_JOB_TAG in tags:
            hashed = jobs.get(tags[HASH_JOB_TAG])
            if hashed is None or (hashed.job, hashed.key, hashed.etag) != (owner.job_id, owner.output, owner.etag):
                problems.append(f"{key}: {HASH_JOB_TAG}={tags[HASH_JOB_TAG]} names {hashed}, not a job of "
                                f"{owner.job_id} on this version")
    return problems


def file_job_problems(run: Run) -> list[str]:
    """Only on the job's own versions; per version at most HASH_JOBS_PER_VERSION (and one more per delivery
    that ran at once: COS has no conditional write to record them), each listed in the version's record."""
    problems = []
    etags = {(v.job_id, v.etag) for v in run.versions}
    per_version: dict[tuple[str, str], list[FileJob]] = {}
    for job in file_jobs(run):
        if (job.job, job.etag) not in etags:
            problems.append(f"FileHashCode job {job.job_id} for {job.job} hashes a version {job.job} did not "
                            f"write ({job.key}, ETag {job.etag})")
        per_version.setdefault((job.key, job.etag), []).append(job)
    peak = concurrency_peak(run.invocations)
    racy = peak > 1 or any(i.limit_ms == HANG_LIMIT_MS for i in run.invocations)
    for (key, etag), started in per_version.items():
        if len(started) > HASH_JOBS_PER_VERSION + peak - 1:
            problems.append(f"{len(started)} FileHashCode jobs on {key} (ETag {etag}), "
                            f"{sum(j.state == 'Failed' for j in started)} failed: more than {HASH_JOBS_PER_VERSION} "
                            f"(+{peak - 1} for deliveries at once)")
        ledger = record(run, f"{REPORTS}hash-jobs/{hashlib.sha256(key.encode()).hexdigest()[:32]}/{etag}")
        listed = {j.get("hashJobId") for j in (ledger or {}).get("hashJobs") or []}
        unlisted = {j.job_id for j in started} - listed
        if unlisted and not racy:
            problems.append(f"FileHashCode jobs {sorted(unlisted)} on {key} (ETag {etag}) are not in its record "
                            f"{ledger}")
    for key in run.emulator.keys(run.bucket, f"{REPORTS}hash-jobs/"):
        ledger = record(run, key) or {}
        for listed in ledger.get("hashJobs") or []:
            if not listed.get("hashJobId"):
                # A reservation whose job id was never filled in: only when the function stopped between the
                # steps, or two deliveries wrote the record at once (README, Server-side hashing).
                if not racy:
                    problems.append(f"{key} keeps the reservation {listed} at rest")
            elif not any(j.job_id == listed["hashJobId"] and (j.key, j.etag) == (ledger.get("key"), ledger.get("etag"))
                         for j in file_jobs(run)):
                problems.append(f"{key} lists {listed}, which CI never ran on that version")
    return problems


def report_problems(run: Run) -> list[str]:
    """There, consistent, and true of every output where it is now."""
    problems = []
    for job_id in (run.j1, *([run.j2_id] if run.j2 else [])):
        report = report_of(run, job_id)
        if report is None:
            problems.append(f"no audit report for {job_id}")
            continue
        entries = report.get("objects") or []
        if report.get("outcome") != combined(entry_standing(e) for e in entries).value:
            problems.append(f"report {job_id}: outcome {report.get('outcome')} does not follow from its entries")
        if any(e.get("verdict") == "pending" for e in entries):
            problems.append(f"report {job_id}: still pending at rest")
        mine = [v for v in run.versions if v.job_id == job_id]
        if sorted(e.get("key") for e in entries) != sorted(v.output for v in mine):
            problems.append(f"report {job_id}: entries for {[e.get('key') for e in entries]}")
        for entry in entries:
            for version in mine:
                if version.output == entry.get("key"):
                    problems += entry_problems(run, version, entry, f"report {job_id}")
    return problems


def sweep_state_problems(run: Run) -> list[str]:
    """Settled markers (never deleted, only on a job whose every output is final), the sweep's checkpoints
    (every job they call settled has its marker) and leases (none outlives the tick that took it)."""
    problems = []
    em, bucket = run.emulator, run.bucket
    settled_now = set(em.keys(bucket, f"{REPORTS}settled/"))
    for gone in sorted(run.settled_seen - settled_now):
        problems.append(f"the settled marker {gone} was deleted")
    created = {run.j1: run.j1_created, **({run.j2_id: run.j2_created} if run.j2 else {})}
    for job_id in created:
        if f"{REPORTS}settled/{job_id}" not in settled_now:
            continue
        report = report_of(run, job_id) or {}
        unsettled = [(e.get("key"), e.get("verdict")) for e in report.get("objects") or []
                     if e.get("verdict") not in ("verified", "mismatch", "missing", "unverifiable", "superseded")
                     or e.get("actionFailed")]
        if unsettled or not report:
            problems.append(f"{job_id} is marked settled, but its report says {unsettled or 'nothing'}")
        for key in em.keys(bucket):
            if not key.startswith(REPORTS) and (em.tags(bucket, key) or {}).get(JOB_TAG) == job_id and \
                    (em.tags(bucket, key) or {}).get(VERIFY_TAG) == "pending":
                problems.append(f"{job_id} is marked settled, but {key} is pending")
    for key in em.keys(bucket, f"{REPORTS}sweep/"):
        if key.endswith(".checkpoint"):
            checkpoint = record(run, key) or {}
            since, through = (_ci_parse(checkpoint.get(k)) for k in ("since", "settledThrough"))
            for job_id, when in created.items():
                claimed = job_id in (checkpoint.get("settled") or {}) or (
                    since is not None and through is not None and since < when <= through)
                if claimed and f"{REPORTS}settled/{job_id}" not in settled_now:
                    problems.append(f"{key} says {job_id} is settled, which has no settled marker")
            writers = checkpoint.get("outputs")
            for place, writer in (writers.items() if isinstance(writers, dict) else ()):
                output = place.split("/", 1)[1] if place.startswith(f"{bucket}/") else None
                wrote = sorted((created[v.job_id], v.job_id) for v in run.versions
                               if v.output == output and v.job_id in created)
                if output is None or not wrote or writer[0] != wrote[-1][1]:
                    problems.append(f"{key} names {writer} as the newest job writing {place}; the jobs that "
                                    f"wrote it: {wrote}")
        elif key.endswith(".lease"):
            lease = record(run, key) or {}
            holder = next((i for i in run.invocations if i.request_id == lease.get("holder")), None)
            until = _ci_parse(lease.get("until"))
            if holder is None or until is None or until.timestamp() > time.time():
                problems.append(f"{key} is held at rest: {lease}")
    return problems


def _ci_parse(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


# Every record the function keeps under REPORT_PREFIX, each checked above: a new kind must get its invariant here.
RECORDS = re.compile(r"(j\d+\.json|notified/j\d+\.json|settled/j\d+|hash-jobs/\w{32}/[\w-]+"
                     r"|sweep/\w+/\w+\.(checkpoint|lease))")


def problems_at_rest(run: Run) -> list[str]:
    problems: list[str] = [f"{key}: a record this test has no invariant for"
                           for key in run.emulator.keys(run.bucket, REPORTS)
                           if not RECORDS.fullmatch(key[len(REPORTS):])]
    by_bytes = {v.data: v for v in run.versions}
    # Bytes: every version still exists unless the other job's rewrite replaced it.
    for version in run.versions:
        if not version.destroyed and not run.places(version):
            problems.append(f"{version.job_id}'s {version.output}: its bytes are lost")
    problems += tag_problems(run)
    problems += file_job_problems(run)
    problems += report_problems(run)
    problems += notification_problems(run)
    problems += sweep_state_problems(run)
    for call in run.invocations:
        took = call.finished - call.started
        if took > call.limit_ms / 1000:
            problems.append(f"{call.what} ({call.request_id}) ran {took:.2f} s, past its {call.limit_ms} ms")
    # A user's tag written while nothing ran is kept.
    for user in run.user_tags:
        version = by_bytes[user.data]
        places = run.places(version)
        if places and not any(user.name in (run.emulator.tags(run.bucket, k) or {}) for k in places):
            problems.append(f"the user's tag {user.name} on {version.output} is lost ({places})")
    return problems


def messages(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """(webhook-id, data) of every message the schedule sent, checking each signature."""
    found = []
    for received in run.world.receiver.requests:
        if received.path != f"/{run.bucket}":
            continue
        assert received.signature == "valid", received.signature
        found.append((received.headers["webhook-id"], json.loads(received.body)["data"]))
    return found


def notification_problems(run: Run) -> list[str]:
    """Once per job and problem (README, Notifications: an object with its verdict): every message names
    only problems not announced for that job before, and the job's record (`notified/<JobId>.json`) lists
    exactly the messages sent. The README's windows: two invocations at the same moment may both announce
    a problem, and two recording at the same moment may lose one's entry, which a later one announces again."""
    problems = []
    sent = messages(run)
    by_request = {i.request_id: i for i in run.invocations}
    racy = concurrency_peak(run.invocations) > 1 or any(i.limit_ms == HANG_LIMIT_MS for i in run.invocations)
    recorded: set[tuple[str, str]] = set()
    for job_id in {data["jobId"] for _, data in sent} | {run.j1, run.j2_id}:
        entries = (record(run, f"{REPORTS}notified/{job_id}.json") or {}).get("messages") or []
        listed = {(m.get("webhookId"), m.get("requestId")) for m in entries}
        delivered = {(webhook_id, data.get("requestId")) for webhook_id, data in sent if data["jobId"] == job_id}
        if listed - delivered:
            problems.append(f"notified/{job_id}.json lists messages nobody received: {sorted(listed - delivered)}")
        if delivered - listed and not racy:
            problems.append(f"messages sent about {job_id} that its record lacks: {sorted(delivered - listed)}")
        recorded |= listed
    announced: dict[tuple[str, str, str], list[tuple[Invocation, bool]]] = {}
    for webhook_id, data in sent:
        sender = by_request.get(data.get("requestId"))
        if sender is None:
            problems.append(f"a message from no invocation of this schedule: {data}")
            continue
        named = [(data["jobId"], o["key"], o["verdict"]) for o in data["objects"]] or \
            [(data["jobId"], "", data["outcome"])]
        again = [p for p in named if any(not sender.overlaps(other) and kept
                                         for other, kept in announced.get(p, []))]
        if again:
            problems.append(f"message {webhook_id} from {sender.what} ({data['outcome']}) announces again "
                            f"{[(key, verdict) for _, key, verdict in again]}")
        for problem in named:
            announced.setdefault(problem, []).append((sender, (webhook_id, data.get("requestId")) in recorded))
    return problems


def snapshot(run: Run) -> dict[str, tuple[str, dict[str, str]]]:
    return {key: (run.emulator.object_info(run.bucket, key)["etag"], run.emulator.tags(run.bucket, key) or {})
            for key in run.emulator.keys(run.bucket)}


def problems_on_replay(run: Run) -> list[str]:
    """A replay of J1's callback at rest: it changes nothing but its own records, starts no file job,
    sends no message, and answers what the report and the tags say."""
    before, jobs, sent = snapshot(run), len(run.finished_jobs), len(messages(run))
    repeats_before = set(notification_problems(run))
    replay = run.deliver_j1(0)
    run.emulator.wait_for_file_jobs()
    problems = []
    unhashable_outputs = [v for v in run.versions if v.job_id == run.j1 and unhashable(run, v)]
    if replay.status != (503 if unhashable_outputs else 200):
        hashed = any(o.get("verdict") == "error" and "HASH_JOBS_PER_VERSION" in o.get("reason", "")
                     for job in replay.answer.get("jobs", []) for o in job["objects"])
        problems.append(f"replay at rest answered {replay.status}"
                        f"{' (an output error although CI hashed it)' if hashed else ''}: {replay.answer}")
    after = snapshot(run)
    changed = sorted(k for k in set(before) | set(after) if not k.startswith(REPORTS) and before.get(k) != after.get(k))
    if changed:
        problems.append(f"replay at rest changed {[(k, before.get(k), after.get(k)) for k in changed]}")
    blind = any(blind_to_moves(run.config, v) for v in ("verified", "mismatch"))
    if len(run.finished_jobs) != jobs:
        problems.append(f"replay at rest started {len(run.finished_jobs) - jobs} FileHashCode job(s)")
    rewritten = any(v.destroyed for v in run.versions)  # the other job changed J1's outputs after J1 settled
    repeats = [p for p in notification_problems(run) if p not in repeats_before]
    problems += [f"replay at rest: {p}" for p in repeats]
    if len(messages(run)) != sent and not (repeats or blind or unhashable_outputs or rewritten):
        problems.append(f"replay at rest sent {messages(run)[sent:]}")
    if "jobs" not in replay.answer:
        return problems
    [job] = replay.answer["jobs"]
    report = report_of(run, run.j1) or {}
    said = sorted((o["key"], o.get("etag"), o["verdict"]) for o in job["objects"])
    kept = sorted((o["key"], o.get("etag"), o["verdict"]) for o in report.get("objects") or [])
    if said != kept:
        problems.append(f"the replay answered {said}, its report says {kept}")
    for entry in job["objects"]:
        for version in run.versions:
            if version.job_id == run.j1 and version.output == entry["key"]:
                problems += entry_problems(run, version, entry, "replay")
    return problems


# --- the test ----------------------------------------------------------------------------------------

# Defects the schedules found that have a failing test of their own (below): the schedules set them aside
# and go on hunting for others; test_random_schedules_without_exemptions does not.
# An entry: (the failing example's name, a predicate on a problem's text).
KNOWN_DEFECTS: list[tuple[str, Callable[[str], object]]] = []


def unexplained(problems: list[str]) -> list[str]:
    return [p for p in problems if not any(matches(p) for _, matches in KNOWN_DEFECTS)]


def run_schedule(world: World, schedule) -> tuple[Run, list[str]]:
    config, plan, drain_fates = schedule
    run = Run(world, config, next(_numbers))
    world.run = run
    try:
        for step in plan:
            run.step(step)
        run.drain(drain_fates)
        problems = problems_at_rest(run)
        if not problems:
            problems = problems_on_replay(run)
        return run, problems
    finally:
        world.run = None
        world.emulator.clear_faults()
        run.close()


def describe(run: Run, problems: list[str]) -> str:
    calls = [(i.what, i.status, round(i.started, 3), round(i.finished, 3)) for i in run.invocations]
    return (f"\nconfig: {run.config}\nsteps:\n  " + "\n  ".join(run.log) + f"\ninvocations: {calls}\n"
            f"file jobs: {file_jobs(run)}\nproblems:\n  " + "\n  ".join(problems))


@pytest.mark.slow  # random schedules: about two minutes
@settings(max_examples=SCHEDULES, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(schedule=schedules)
def test_random_schedules_in_every_mode(world, schedule):
    run, problems = run_schedule(world, schedule)
    assert not unexplained(problems), describe(run, problems)


@pytest.mark.slow
@pytest.mark.skipif(not KNOWN_DEFECTS, reason="KNOWN_DEFECTS sets nothing aside: the test above is this one")
@pytest.mark.xfail(strict=False, reason="the defects KNOWN_DEFECTS names, each with a failing test of its own")
@settings(max_examples=max(SCHEDULES // 10, 1), deadline=None, database=None,
          derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(schedule=schedules)
def test_random_schedules_without_exemptions(world, schedule):
    run, problems = run_schedule(world, schedule)
    assert not problems, describe(run, problems)


# --- new defects the schedules found, each reduced to a minimal example --------------------------------

def _timer_context() -> dict[str, Any]:
    return {"request_id": "tick", "time_limit_in_ms": LIMIT_MS}


@pytest.mark.parametrize("order", ["hash callback, then a replay", "a sweep, then the late hash callback"])
def test_no_second_message_for_problems_already_announced(emulator, make_app, order):
    """Found by the schedules (server mode), and fixed meanwhile as red-team D3 (6b098ab). `corrupt` is a
    mismatch hashed by filehash, `big` one hashed by a FileHashCode job. Messages were remembered by the
    set of objects each named, and a hash callback names only its object while a whole run names both:
    so (1) the media callback announced {corrupt}, the hash callback {big}, and a replay of the media
    callback {big, corrupt} once more; (2) a timer tick that finished `big` from CI's account announced
    {big, corrupt}, and the hash callback arriving late {big} once more. README, Notifications: once per
    job and problem; a replay sends nothing."""
    from tests.samples import BUCKET

    held: list[FileJobCallback] = []
    emulator.callback_sink = held.append
    big = bytes(range(256)) * 256
    emulator.put_object(BUCKET, "out/big", big[::-1], part_size=16 * 1024)  # not CI's bytes, in parts
    emulator.put_object(BUCKET, "out/corrupt", b"not what CI wrote")
    # CI's synchronous hash refuses an object from 128 MB (400 InvalidArgument): this one goes to a job.
    emulator.add_fault(method="GET", key="out/big", query="ci-process", status=400, code="InvalidArgument",
                       times=None)
    body = job_xml({"out/big": md5(big), "out/corrupt": md5(b"what CI wrote")}, [])
    emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
    with WebhookReceiver(secret=NOTIFY_SECRET) as hook:
        app = make_app(VERIFY_MODE="server", HASH_CALLBACK_URL="https://fn.example/cb?token=test-token",
                       DEFAULT_REGION=REGION, REPORT_PREFIX=REPORTS, NOTIFY_URL=hook.url(), NOTIFY_SECRET=NOTIFY_SECRET)
        first = app.handle(http_event(body), _timer_context())
        assert json.loads(first["body"])["jobs"][0]["outcome"] == "failed"  # corrupt: mismatch; big: pending
        emulator.wait_for_file_jobs()
        [hashed] = held
        hash_callback = http_event(hashed.body, hashed.content_type)
        if order == "hash callback, then a replay":
            assert app.handle(hash_callback, _timer_context())["statusCode"] == 200
            assert app.handle(http_event(body), _timer_context())["statusCode"] == 200
        else:
            assert app.handle(TIMER, _timer_context())["sweep"]["checked"] == 1
            assert app.handle(hash_callback, _timer_context())["statusCode"] == 200
        named = [sorted((o["key"], o["verdict"]) for o in r.json()["data"]["objects"]) for r in hook.requests]
    announced = [problem for message in named for problem in message]
    assert sorted(announced) == sorted(set(announced)), f"problems announced again: {named}"


def test_a_replay_after_a_later_job_rewrote_a_moved_output_keeps_the_moved_verdict(emulator, make_app):
    """Found by the schedules (every mode); fixed in 8736d8f, and this failed before. J1 verified out/a.mp3
    and moved it to verified/out/a.mp3, tagged ci-job=J1. Ten minutes after J1 ended, J2 writes its own
    out/a.mp3. A replay of J1's callback then reports out/a.mp3 `superseded` (naming J2's ETag) and
    overwrites J1's audit report with that, although J1's verified copy is at verified/out/a.mp3 tagged
    verified/J1: report and tags disagree at rest, and the report no longer says where J1's output went. (A
    missing source is recognised as an earlier move; a source rewritten by a later job is not.)"""
    from tests.samples import BUCKET

    ended = datetime.now(timezone.utc) - timedelta(minutes=10)
    data = b"J1's voice track" * 100
    emulator.put_object(BUCKET, "out/a.mp3", data, last_modified=ended.timestamp() - 2)
    times = tuple(ci_time(ended - timedelta(seconds=s)) for s in (6, 5, 0))
    body = job_xml({"out/a.mp3": md5(data)}, [], times=times)
    app = make_app(ACTION_VERIFIED="tag,move", REPORT_PREFIX=REPORTS)
    first = json.loads(app.handle(http_event(body), _timer_context())["body"])["jobs"][0]["objects"][0]
    assert (first["verdict"], first["actions"]) == ("verified", ["tagged", "moved:verified/out/a.mp3"])
    emulator.put_object(BUCKET, "out/a.mp3", b"J2's output, written now")  # a later job reuses the key
    replay = json.loads(app.handle(http_event(body), _timer_context())["body"])["jobs"][0]["objects"][0]
    report = json.loads(emulator.object_bytes(BUCKET, f"{REPORTS}j0000000000000000000000000000001.json"))
    assert emulator.tags(BUCKET, "verified/out/a.mp3") == {VERIFY_TAG: "verified",
                                                          JOB_TAG: "j0000000000000000000000000000001"}
    assert (replay["verdict"], report["objects"][0]["verdict"]) == ("verified", "verified"), \
        f"the replay answered {replay}; the report now says {report['objects'][0]}"


def test_a_failed_hash_job_listed_last_does_not_hide_the_one_that_succeeded(emulator, make_app):
    """Found by the schedules (server mode, no tag action); fixed in b2ed832, and this failed before. Two
    deliveries at once each start a FileHashCode job on the same version (the README's window: the record
    has no conditional write). A reserves its entry first, but CI is slow to take its job; B's job, listed
    second, starts first and fails (here the object is archived until it is restored); A's succeeds. Without
    tags the function knows its jobs from the record alone, and it asks CI only about the one listed last:
    it finds it failed, counts two jobs against HASH_JOBS_PER_VERSION=2 and gives the object up, `error`,
    503 — on the failed job's callback, on every replay and on every sweep tick — although CI hashed the
    version (only A's own callback, if it comes, says so, and the next replay or tick undoes it in the
    report)."""
    from tests.samples import BUCKET

    held: list[FileJobCallback] = []

    def restored_after_the_first_failure(callback: FileJobCallback) -> None:
        held.append(callback)
        if b"<State>Failed</State>" in callback.body:
            emulator.fail_file_jobs(BUCKET, "out/big", None)

    emulator.callback_sink = restored_after_the_first_failure
    big = bytes(range(256)) * 256
    emulator.put_object(BUCKET, "out/big", big, part_size=16 * 1024)
    emulator.add_fault(method="GET", key="out/big", query="ci-process", status=400, code="InvalidArgument",
                       times=None)  # CI's synchronous hash refuses an object from 128 MB: a job hashes it
    emulator.add_fault(service="ci", method="POST", delay=0.6, times=1)  # the first submission takes longer
    emulator.fail_file_jobs(BUCKET, "out/big")  # the first job to run fails
    body = job_xml({"out/big": md5(big)}, [])
    app = make_app(VERIFY_MODE="server", ACTION_VERIFIED="none", ACTION_FAILED="none", REPORT_PREFIX=REPORTS,
                   HASH_CALLBACK_URL="https://fn.example/cb?token=test-token", DEFAULT_REGION=REGION)
    answers: list[dict[str, Any]] = []

    def deliver(after: float) -> None:
        time.sleep(after)
        answers.append(json.loads(app.handle(http_event(body), _timer_context())["body"]))

    threads = [threading.Thread(target=deliver, args=(after,)) for after in (0.0, 0.25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    emulator.wait_for_file_jobs()
    assert sorted(b"<State>Failed</State>" in c.body for c in held) == [False, True]  # one failed, one hashed
    assert [a["jobs"][0]["objects"][0]["verdict"] for a in answers] == ["pending", "pending"]
    verdicts = []
    for callback in held:
        done = app.handle(http_event(callback.body, callback.content_type), _timer_context())
        verdicts.append((done["statusCode"], json.loads(done["body"])["jobs"][0]["objects"][0]["verdict"]))
    replay = app.handle(http_event(body), _timer_context())
    verdicts.append((replay["statusCode"], json.loads(replay["body"])["jobs"][0]["objects"][0]["verdict"]))
    assert verdicts == [(200, "verified")] * 3, f"CI hashed the version, yet: {verdicts}"


def test_a_hash_job_the_record_lost_does_not_leave_a_hashed_version_in_error(emulator, make_app):
    """Found by the schedules (server mode, no tag action, two deliveries at once, a job that fails). The
    version's record of its FileHashCode jobs has no conditional write: two deliveries writing it at once
    can each lose the other's entry (README, Server-side hashing). The schedules ended with the record
    listing a reservation left without its job and the job that failed, while the job that hashed the
    version was listed nowhere. That job's own callback settles the object (200), but every later run —
    CI delivering again the callback it was answered 503, a replay, the sweep — counts the reservation and
    the failed job against HASH_JOBS_PER_VERSION=2, gives the object up as `error`, answers 503 for good and
    writes `error` over the verdict in the audit report, although CI hashed the version. Here the record is
    placed as the race leaves it (the jobs are the function's own, started through the entry point)."""
    from tests.samples import BUCKET

    held: list[FileJobCallback] = []

    def restored_after_the_first_failure(callback: FileJobCallback) -> None:
        held.append(callback)
        if b"<State>Failed</State>" in callback.body:
            emulator.fail_file_jobs(BUCKET, "out/big", None)

    emulator.callback_sink = restored_after_the_first_failure
    big = bytes(range(256)) * 256
    etag = emulator.put_object(BUCKET, "out/big", big, part_size=16 * 1024)
    emulator.add_fault(method="GET", key="out/big", query="ci-process", status=400, code="InvalidArgument",
                       times=None)  # CI's synchronous hash refuses an object from 128 MB: a job hashes it
    emulator.fail_file_jobs(BUCKET, "out/big")  # the first job fails (the object is archived, then restored)
    body = job_xml({"out/big": md5(big)}, [])
    app = make_app(VERIFY_MODE="server", ACTION_VERIFIED="none", ACTION_FAILED="none", REPORT_PREFIX=REPORTS,
                   HASH_CALLBACK_URL="https://fn.example/cb?token=test-token", DEFAULT_REGION=REGION)
    assert json.loads(app.handle(http_event(body), _timer_context())["body"])["jobs"][0]["outcome"] == "pending"
    emulator.wait_for_file_jobs()
    [failed] = held
    assert app.handle(http_event(failed.body, failed.content_type), _timer_context())["statusCode"] == 200
    emulator.wait_for_file_jobs()
    [_, hashed] = held  # the failed job's callback started another, and CI hashed the version with it
    [record_key] = emulator.keys(BUCKET, f"{REPORTS}hash-jobs/")
    record = json.loads(emulator.object_bytes(BUCKET, record_key))
    assert [e["hashJobId"] for e in record["hashJobs"]] == [failed.job_id, hashed.job_id]
    # As two deliveries writing the record at once leave it: a reservation whose fill-in was lost, and the
    # failed job appended by a fill-in that found its reservation gone; the job that hashed it is not listed.
    emulator.put_object(BUCKET, record_key, json.dumps({"bucket": BUCKET, "key": "out/big", "etag": etag, "hashJobs": [
        {"hashJobId": "", "jobId": "j0000000000000000000000000000001", "submittedAt": record["hashJobs"][0][
            "submittedAt"], "reservation": "71aee1190929499e"},
        {"hashJobId": failed.job_id, "jobId": "", "submittedAt": record["hashJobs"][0]["submittedAt"],
         "reservation": "3f6642958ce1401b"}]}).encode())
    done = app.handle(http_event(hashed.body, hashed.content_type), _timer_context())
    assert (done["statusCode"], json.loads(done["body"])["jobs"][0]["objects"][0]["verdict"]) == (200, "verified")
    replay = app.handle(http_event(body), _timer_context())
    verdict = json.loads(replay["body"])["jobs"][0]["objects"][0]
    report = json.loads(emulator.object_bytes(BUCKET, f"{REPORTS}j0000000000000000000000000000001.json"))
    assert (replay["statusCode"], verdict["verdict"], report["objects"][0]["verdict"]) == (200, "verified", "verified"), \
        f"CI hashed the version ({hashed.job_id}), yet the replay answered {verdict}"
