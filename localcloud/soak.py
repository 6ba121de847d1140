"""Soak run: many callbacks, random COS faults, duplicate and concurrent deliveries.

    python -m localcloud soak [--callbacks 1000] [--seed 7] [--log FILE | --verbose]

Every job's outputs are uploaded to the emulator (some multipart, some with bytes that
differ from what the callback reports, some never written) and the job registered with
CI's job API; each callback is delivered one to three times, some deliveries at once, with
faults injected on random requests, and one in ten is never delivered at all. Callbacks
answered 503 are delivered again, as CI or the platform would, and timer ticks run the
reconciliation sweep until it has caught up. Then every object is checked: its bytes must
exist exactly once, at the right place, with the right tags. Exits non-zero when an object
was lost or wrongly marked.

It prints where it is (a line per stage, the deliveries every tenth) and its figures. The function's
own log lines go to a file (--log, else a new one in the temporary folder; the first and last lines
say which): the faults are injected on purpose, so they are full of ERROR lines (`outcome: retry`,
answered 503) that are no failure of the soak. --verbose prints them here instead.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import xmltodict

from localcloud.cos import CosEmulator

BUCKET, REGION = "soak-1250000000", "ap-chongqing"
SECRET_ID, SECRET_KEY = "AKIDsoak000000000000000000000000", "soak-secret-key"
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "", "Message": ""}
MOVE_ENV = {"ACTION_VERIFIED": "tag,move", "ACTION_FAILED": "tag,move", "VERIFIED_PREFIX": "verified/",
            "QUARANTINE_PREFIX": "quarantine/"}


@dataclass(frozen=True)
class Output:
    key: str
    data: bytes | None  # None: the job reported it but never wrote it
    reported_md5: str

    @property
    def truth(self) -> str:
        if self.data is None:
            return "missing"
        return "verified" if hashlib.md5(self.data).hexdigest() == self.reported_md5 else "mismatch"


@dataclass
class Figures:
    callbacks: int = 0
    callbacks_lost: int = 0
    deliveries: int = 0
    redeliveries: int = 0
    sweep_ticks: int = 0
    checked_by_sweep: int = 0
    faults_injected: int = 0
    objects: int = 0
    objects_moved: int = 0
    objects_lost: int = 0
    wrong_verdicts: int = 0
    problems: list[str] = field(default_factory=list)


def callback_body(job_id: str, outputs: list[Output], end: str) -> bytes:
    md5_info = "".join(f"<Md5Info><Md5>{o.reported_md5}</Md5><ObjectName>{o.key}</ObjectName></Md5Info>"
                       for o in outputs)
    names = "".join(f"<ObjectName>{o.key}</ObjectName>" for o in outputs)
    return (f"<Response><EventName>TaskFinish</EventName><JobsDetail><Code>Success</Code><JobId>{job_id}</JobId>"
            f"<State>Success</State><Tag>VoiceSeparate</Tag><CreationTime>{end}</CreationTime><EndTime>{end}</EndTime>"
            f"<Input><BucketId>{BUCKET}</BucketId><Object>in/{job_id}.mp3</Object><Region>{REGION}</Region></Input>"
            f"<Operation><MediaResult><OutputFile><Bucket>{BUCKET}</Bucket><Region>{REGION}</Region>"
            f"{md5_info}{names}<ObjectPrefix/></OutputFile></MediaResult></Operation>"
            f"</JobsDetail></Response>").encode()


def make_jobs(count: int, rng: random.Random) -> dict[str, list[Output]]:
    jobs = {}
    for n in range(count):
        job_id = f"j{n:031d}"
        outputs = []
        for track in range(rng.randint(1, 3)):
            data = rng.randbytes(rng.randint(1, 48 * 1024))
            roll = rng.random()
            if roll < 0.15:
                outputs.append(Output(f"out/{job_id}/{track}.mp3", data, hashlib.md5(data + b"!").hexdigest()))
            elif roll < 0.20:
                outputs.append(Output(f"out/{job_id}/{track}.mp3", None, hashlib.md5(data).hexdigest()))
            else:
                outputs.append(Output(f"out/{job_id}/{track}.mp3", data, hashlib.md5(data).hexdigest()))
        jobs[job_id] = outputs
    return jobs


def upload(emulator: CosEmulator, jobs: dict[str, list[Output]], rng: random.Random) -> None:
    for outputs in jobs.values():
        for output in outputs:
            if output.data is not None:
                # Some as multipart uploads, whose ETag is not an MD5.
                part_size = 8 * 1024 if rng.random() < 0.3 and len(output.data) > 16 * 1024 else None
                emulator.put_object(BUCKET, output.key, output.data, part_size=part_size)


FAULTS = [
    dict(method="HEAD", status=503), dict(method="HEAD", reset=True),
    dict(method="GET", query="!", truncate=100), dict(method="GET", query="!", status=503),
    dict(method="GET", query="tagging", status=503), dict(method="PUT", query="tagging", status=503),
    dict(method="PUT", query="!", copy_error_body=True), dict(method="PUT", query="!", status=503),
    dict(method="PUT", query="!", reset=True), dict(method="DELETE", status=503),
    dict(method="DELETE", reset=True), dict(method="HEAD", delay=0.05),
]


def inject_faults(emulator: CosEmulator, rng: random.Random, keys: list[str]) -> None:
    for _ in range(rng.randint(0, 2)):
        emulator.add_fault(**rng.choice(FAULTS), times=rng.randint(1, 8))
    if keys and rng.random() < 0.5:
        # Aimed at one object and outlasting the retries: that delivery must answer 503.
        fault = dict(rng.choice(FAULTS), key=rng.choice(keys))
        emulator.add_fault(**fault, times=6)


def expected_place(output: Output) -> str | None:
    return {"verified": f"verified/{output.key}", "mismatch": f"quarantine/{output.key}"}.get(output.truth)


def _places(emulator: CosEmulator, bucket: str, output: Output) -> list[str]:
    keys = (output.key, f"verified/{output.key}", f"quarantine/{output.key}")
    return [k for k in keys if emulator.object_bytes(bucket, k) is not None]


def safety_problems(emulator: CosEmulator, bucket: str, outputs: list[Output]) -> list[str]:
    """What must hold at every instant, whatever failed: no bytes lost, none marked verified
    unless they hash to CI's MD5, none quarantined unless they differ from it."""
    problems = []
    for output in outputs:
        places = _places(emulator, bucket, output)
        if output.data is not None and not any(emulator.object_bytes(bucket, k) == output.data for k in places):
            problems.append(f"{output.key}: LOST (found at {places})")
        for place in places:
            held = emulator.object_bytes(bucket, place)
            verdict = (emulator.tags(bucket, place) or {}).get("ci-verify")
            matches = held is not None and hashlib.md5(held).hexdigest() == output.reported_md5
            if verdict == "verified" and not matches:
                problems.append(f"{place}: tagged verified but its bytes differ from CI's MD5")
            if place.startswith("verified/") and not matches:
                problems.append(f"{place}: moved as verified but its bytes differ from CI's MD5")
            if place.startswith("quarantine/") and matches:
                problems.append(f"{place}: quarantined but its bytes are the ones CI reported")
    return problems


def placement_problems(emulator: CosEmulator, bucket: str, job_id: str, outputs: list[Output]) -> list[str]:
    """The final state once a delivery succeeded: each object only where its verdict sends it."""
    problems = []
    for output in outputs:
        places, want = _places(emulator, bucket, output), expected_place(output)
        if places != ([want] if want else []):
            problems.append(f"{output.key}: expected at {want}, found at {places}")
        elif want and (emulator.tags(bucket, want) or {}) != {"ci-verify": output.truth, "ci-job": job_id}:
            problems.append(f"{want}: tags {emulator.tags(bucket, want)}, expected ci-verify={output.truth}")
    return problems


def check_final_state(emulator: CosEmulator, jobs: dict[str, list[Output]], figures: Figures) -> None:
    for job_id, outputs in jobs.items():
        figures.objects += len(outputs)
        safety = safety_problems(emulator, BUCKET, outputs)
        placement = placement_problems(emulator, BUCKET, job_id, outputs)
        figures.objects_lost += sum("LOST" in p for p in safety)
        figures.wrong_verdicts += sum("LOST" not in p for p in safety)
        figures.objects_moved += sum(1 for o in outputs if o.data is not None and expected_place(o)
                                     and emulator.object_bytes(BUCKET, expected_place(o)) == o.data)
        figures.problems.extend(safety + placement)


def run(callbacks: int, seed: int, apps: int = 4, quiet: bool = False,
        progress: Callable[[str], None] | None = None) -> Figures:
    """The soak; `progress` is told each stage (the function's own log lines go to sys.stdout, as in SCF)."""
    say = progress or (lambda line: None)
    # Imported here: the function reads its settings when built, after the emulator is up.
    from handlers.app import App
    from handlers.settings import Settings

    rng = random.Random(seed)
    figures = Figures(callbacks=callbacks)
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY) as emulator:
        emulator.create_bucket(BUCKET, region=REGION)
        jobs = make_jobs(callbacks, rng)
        upload(emulator, jobs, rng)
        say(f"{len(jobs)} jobs, {sum(len(outputs) for outputs in jobs.values())} outputs in the COS emulator")
        env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
               "COS_ENDPOINT": emulator.endpoint, "COS_TIMEOUT_SECONDS": "2", "CONCURRENCY": "8",
               "LOG_LEVEL": "error", "DEFAULT_REGION": REGION, "RECONCILE_BUCKETS": BUCKET, **MOVE_ENV,
               **extra_env()}
        containers = [App(Settings.from_env(env)) for _ in range(apps)]
        end = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())
        bodies = {job_id: callback_body(job_id, outputs, end) for job_id, outputs in jobs.items()}
        for body in bodies.values():  # CI's job API knows every job, delivered or not
            emulator.register_job(BUCKET, xmltodict.parse(body)["Response"]["JobsDetail"])
        lost = set(rng.sample(sorted(jobs), len(jobs) // 10))
        figures.callbacks_lost = len(lost)
        last_status: dict[str, int] = {}
        lock = threading.Lock()

        def deliver(job_id: str) -> None:
            event = {"httpMethod": "POST", "path": "/", "headers": {"content-type": "application/xml"},
                     "queryString": extra_query(), "body": bodies[job_id].decode()}
            app = containers[hash((job_id, threading.get_ident())) % len(containers)]
            status = app.handle(event, {"request_id": job_id, "time_limit_in_ms": 20000})["statusCode"]
            with lock:
                figures.deliveries += 1
                last_status[job_id] = status

        plan = [job_id for job_id in jobs if job_id not in lost for _ in range(rng.choice((1, 1, 2, 3)))]
        rng.shuffle(plan)
        say(f"delivering {len(plan)} callbacks ({len(lost)} jobs never called back), faults on random requests")
        shown = 0
        with ThreadPoolExecutor(8) as pool:  # duplicates of one job often run at the same time
            for start in range(0, len(plan), 16):
                batch = plan[start:start + 16]
                inject_faults(emulator, rng, [o.key for job_id in batch for o in jobs[job_id]])
                list(pool.map(deliver, batch))
                done = start + len(batch)
                if done * 10 // len(plan) > shown or done == len(plan):  # every tenth
                    shown = done * 10 // len(plan)
                    say(f"  delivered {done}/{len(plan)}")
        figures.faults_injected = sum(1 for r in emulator.requests if r.fault)
        emulator.clear_faults()
        for _ in range(3):  # CI (or the platform) sends a 503-answered callback again
            again = [job_id for job_id, status in last_status.items() if status != 200]
            figures.redeliveries += len(again)
            if again:
                say(f"delivering again the {len(again)} callbacks answered 503")
            for job_id in again:
                deliver(job_id)
        for job_id, status in last_status.items():
            if status != 200:
                figures.problems.append(f"{job_id}: still answered {status} after redelivery")
        while figures.sweep_ticks < 20:  # timer ticks until the sweep has caught up
            figures.sweep_ticks += 1
            sweep = containers[0].handle(TIMER, {"request_id": f"tick-{figures.sweep_ticks}",
                                                 "time_limit_in_ms": 60000})["sweep"]
            figures.checked_by_sweep += sweep["checked"]
            say(f"sweep tick {figures.sweep_ticks}: {sweep['checked']} jobs checked")
            if not sweep["stoppedEarly"] and not sweep["errors"]:
                break
        for app in containers:
            app.close()
        say("checking every object's bytes, place and tags")
        check_final_state(emulator, jobs, figures)
    if not quiet:
        print_figures(figures)
    return figures


def extra_env() -> dict[str, str]:
    """Settings the security layer needs (token, allow-list) so the soak runs the real path."""
    return {"CALLBACK_TOKEN": "soak-token", "ALLOWED_BUCKETS": BUCKET, "VERIFY_WITH_CI": "false"}


def extra_query() -> dict[str, str]:
    return {"token": "soak-token"}


def print_figures(figures: Figures) -> None:
    shown = {k: v for k, v in figures.__dict__.items() if k != "problems"}
    print(json.dumps(shown, indent=2))
    for problem in figures.problems[:20]:
        print("PROBLEM:", problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud soak", description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    where_logs = parser.add_mutually_exclusive_group()
    where_logs.add_argument("--log", help="the file for the function's log lines (default: a new one in the temporary "
                                      "folder, named at the start and the end)")
    where_logs.add_argument("--verbose", action="store_true", help="the function's log lines here, as they come")
    args = parser.parse_args(argv)
    out = sys.stdout

    def progress(line: str) -> None:
        print(line, file=out, flush=True)

    started = time.monotonic()
    if args.verbose:
        progress(f"soak: {args.callbacks} callbacks, seed {args.seed}; the function's log lines here")
        figures = run(args.callbacks, args.seed, quiet=True, progress=progress)
        where = "above"
    else:
        where = args.log or _new_log_file()
        progress(f"soak: {args.callbacks} callbacks, seed {args.seed}; the function's log lines go to {where} "
                 "(--verbose: here)")
        with open(where, "w", encoding="utf-8") as log_file, contextlib.redirect_stdout(log_file):
            figures = run(args.callbacks, args.seed, quiet=True, progress=progress)
    print_figures(figures)
    failed = bool(figures.objects_lost or figures.wrong_verdicts or figures.problems)
    print(f"the function's log: {where} (its errors are the faults injected on purpose, answered 503 and "
          "delivered again)")
    print(f"{'FAILED' if failed else 'OK'}: {figures.objects} objects, {figures.objects_lost} lost, "
          f"{figures.wrong_verdicts} wrongly marked, {len(figures.problems)} problems "
          f"({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


def _new_log_file() -> str:
    handle, path = tempfile.mkstemp(prefix="ci-callback-verifier-soak-", suffix=".log")
    with open(handle, "w"):
        pass  # opened again by name: the path is what the user reads
    return path
