"""Random schedules of deliveries against the emulator, checked against the invariants.

A schedule is a few rounds; each round runs one or more deliveries of the same callback at
once (duplicates, concurrent ones, replays after a failure injected into the previous round)
beside a user who tags the outputs or rewrites one. After every schedule:

- bytes are never lost (a rewriter's bytes only in the README's delete window);
- `ci-verify=verified` only on bytes that hash to CI's MD5, `mismatch` only on others;
- no user tag is lost outside the README's residual windows, judged from the emulator's
  request log (for concurrent deliveries the log cannot say which read a write was based
  on, so the window then runs from the round's first tag read);
- another job's objects are never touched (no write request, same bytes, same tags).

CONCURRENCY_SCHEDULES sets the number of schedules (300 by default, about two minutes in
CI; 40 under Python 3.10 in `dev.py compat`); CONCURRENCY_SCHEDULES=3000, say, for a long run.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.app import App
from handlers.settings import Settings
from localcloud.cos import CosEmulator
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, function_env, http_event, invoke
from tests.samples import BUCKET, REGION, job_xml

pytestmark = pytest.mark.slow  # random schedules of deliveries: over a minute

SCHEDULES = int(os.environ.get("CONCURRENCY_SCHEDULES", "300"))
J1, J2 = "j1000000000000000000000000000001", "j2000000000000000000000000000002"
CONFIGS = {"tag": {"ACTION_VERIFIED": "tag", "ACTION_FAILED": "tag"},
           "move": {"ACTION_VERIFIED": "tag,move", "ACTION_FAILED": "tag,move"}}
APPS_PER_CONFIG = 3
OUTPUTS = ("plain", "parts", "corrupt")  # verified by ETag, verified by content, a mismatch
FAULTS = {  # injected into one round, consumed by whichever request meets it first
    "head 503": dict(method="HEAD", status=503), "tag read 503": dict(method="GET", query="tagging", status=503),
    "tag write 503": dict(method="PUT", query="tagging", status=503), "copy 503": dict(method="PUT", query="!", status=503),
    "delete 503": dict(method="DELETE", query="!", status=503), "slow hash": dict(method="GET", query="!", delay=0.05),
    "slow tag write": dict(method="PUT", query="tagging", delay=0.03),
    "slow head": dict(method="HEAD", delay=0.03),
}
_numbers = count()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- the schedules ----------------------------------------------------------------------------

@dataclass(frozen=True)
class UserOp:
    after_ms: int
    output: str
    kind: str  # "tag" | "rewrite"
    place: str = ""  # "", "verified/" or "quarantine/": the output where a move puts it


@dataclass(frozen=True)
class Round:
    apps: tuple[int, ...]  # deliveries run at once, by app index
    fault: str | None
    user: tuple[UserOp, ...]


user_ops = st.builds(UserOp, st.integers(0, 40), st.sampled_from(OUTPUTS), st.sampled_from(["tag", "tag", "rewrite"]),
                     st.sampled_from(["", "", "verified/", "quarantine/"]))
rounds = st.builds(Round, st.lists(st.integers(0, APPS_PER_CONFIG - 1), min_size=1, max_size=3).map(tuple),
                   st.one_of(st.none(), st.sampled_from(sorted(FAULTS))),
                   st.lists(user_ops, max_size=3).map(tuple))
schedules = st.tuples(st.sampled_from(sorted(CONFIGS)), st.lists(rounds, min_size=1, max_size=4))


# --- the world ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emulator:
        emulator.create_bucket(BUCKET, region=REGION)
        apps = {name: [App(Settings.from_env(function_env(emulator, CONCURRENCY="4", **env)))
                       for _ in range(APPS_PER_CONFIG)] for name, env in CONFIGS.items()}
        yield emulator, apps
        for group in apps.values():
            for app in group:
                app.close()


@dataclass
class Tagging:
    key: str
    name: str
    etag: str  # the version tagged
    data: bytes
    t0: float
    t1: float


@dataclass
class Rewrite:
    key: str
    data: bytes
    t0: float
    t1: float


@dataclass
class Journal:
    taggings: list[Tagging] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    rounds: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, deliveries


def run_user(emulator: CosEmulator, prefix: str, ops: tuple[UserOp, ...], journal: Journal, started: float) -> None:
    """A user's tool beside the deliveries: adds a tag (read, modify, write), or rewrites an output."""
    for op in sorted(ops, key=lambda o: o.after_ms):
        time.sleep(max(0.0, started + op.after_ms / 1000 - time.monotonic()))
        key = f"{op.place if op.kind == 'tag' else ''}{prefix}{op.output}"
        if op.kind == "rewrite":
            if any(r.key == key for r in journal.rewrites):
                continue  # one rewrite per output keeps the bookkeeping exact
            data = f"rewritten {key} {next(_numbers)}".encode() * 50
            t0 = time.monotonic()
            emulator.put_object(BUCKET, key, data)
            journal.rewrites.append(Rewrite(key, data, t0, time.monotonic()))
            continue
        current = emulator.tags(BUCKET, key)
        info, data = emulator.object_info(BUCKET, key), emulator.object_bytes(BUCKET, key)
        if current is None or info is None or data is None or sum(n.startswith("u") for n in current) >= 3:
            continue
        name = f"u{next(_numbers)}"
        t0 = time.monotonic()
        try:
            emulator.set_tags(BUCKET, key, {**current, name: "yes"})
        except KeyError:
            continue  # moved away meanwhile
        t1 = time.monotonic()
        after = emulator.object_info(BUCKET, key)
        if after is not None and after["etag"] == info["etag"]:
            journal.taggings.append(Tagging(key, name, info["etag"], data, t0, t1))


def setup(emulator: CosEmulator, prefix: str) -> tuple[bytes, dict[str, bytes], dict[str, str]]:
    data = {"plain": f"plain {prefix}".encode() * 300, "parts": bytes(range(256)) * 512 + prefix.encode(),
            "corrupt": f"not what CI wrote {prefix}".encode() * 200}
    emulator.put_object(BUCKET, f"{prefix}plain", data["plain"])
    emulator.put_object(BUCKET, f"{prefix}parts", data["parts"], part_size=64 * 1024)
    emulator.put_object(BUCKET, f"{prefix}corrupt", data["corrupt"])
    reported = {"plain": md5(data["plain"]), "parts": md5(data["parts"]), "corrupt": md5(b"what CI wrote"),
                "gone": md5(b"an output CI reports but never wrote")}
    # Another job's objects: its quarantined output at the key J1's missing output would move to,
    # and one more of its outputs beside J1's.
    emulator.put_object(BUCKET, f"quarantine/{prefix}gone", b"J2's corrupt output")
    emulator.set_tags(BUCKET, f"quarantine/{prefix}gone", {"ci-verify": "mismatch", "ci-job": J2})
    emulator.put_object(BUCKET, f"{prefix}j2", b"J2's verified output")
    emulator.set_tags(BUCKET, f"{prefix}j2", {"ci-verify": "verified", "ci-job": J2, "owner": "j2"})
    body = job_xml(md5s={f"{prefix}{name}": md5_ for name, md5_ in reported.items()}, names=[], job_id=J1)
    return body, data, reported


def deliver_round(emulator, apps, body: bytes, prefix: str, rnd: Round, journal: Journal) -> None:
    fault = None
    if rnd.fault is not None:
        import re
        fault = emulator.add_fault(key=re.compile(f"^(verified/|quarantine/)?{re.escape(prefix)}(plain|parts|corrupt)$"),
                                   **FAULTS[rnd.fault])
    started = time.monotonic()
    threads = [threading.Thread(target=invoke, args=(apps[i], http_event(body)),
                                kwargs={"context": {"request_id": "p", "time_limit_in_ms": 20000}}) for i in rnd.apps]
    user = threading.Thread(target=run_user, args=(emulator, prefix, rnd.user, journal, started))
    for thread in (*threads, user):
        thread.start()
    for thread in (*threads, user):
        thread.join()
    journal.rounds.append((started, time.monotonic(), len(rnd.apps)))
    if fault is not None:
        emulator.clear_faults()


# --- the invariants ----------------------------------------------------------------------------------

def places_of(emulator, prefix: str, name: str) -> list[str]:
    keys = (f"{prefix}{name}", f"verified/{prefix}{name}", f"quarantine/{prefix}{name}")
    return [k for k in keys if emulator.object_info(BUCKET, k) is not None]


def loss_windows(records, key: str, rounds) -> list[tuple[float, float]]:
    """When a tag on `key` may be lost: from the read a write of ours was based on to the end of
    that write (PUT/DELETE ?tagging on the key; or the DELETE that ends a move: the tags were
    read for the destination before it). A read older than a content read of the key (a hash)
    or a copy is stale: it opens no window."""
    mine = [r for r in records if r.key == key or r.key.endswith("/" + key)]
    is_destination = key.startswith(("verified/", "quarantine/"))
    windows = []
    for write in mine:
        if write.key != key or write.method not in ("PUT", "DELETE") or write.status >= 300:
            continue
        if write.method == "PUT" and "tagging" not in write.query:
            continue  # a copy onto this key
        round_ = next((r for r in rounds if r[0] <= write.started <= r[1]), None)
        # A destination's tags are set from the source's; the move's copy created the object.
        reads = [r for r in mine if r.key == key and r.started <= write.started
                 and (round_ is None or r.started >= round_[0])
                 and ((r.method == "GET" and "tagging" in r.query)
                      or (is_destination and "x-cos-copy-source" in r.headers))]
        if not reads:
            continue
        concurrent = round_ is not None and round_[2] > 1
        base = reads[0] if concurrent else reads[-1]
        stale = any(r.started > base.started and r.started < write.started and r.key == key
                    and ((r.method == "GET" and not r.query)
                         or ("x-cos-copy-source" in r.headers and not is_destination)) for r in mine)
        if concurrent or not stale:
            windows.append((base.started, write.finished))
    return windows


def carried_before_rewrite(records, tagging: Tagging, rewrite: Rewrite, rounds) -> bool:
    """Whether a tag on a source that its owner later rewrote should have reached a move's
    destination: only a read of the source's tags after the tag was written and before the
    rewrite replaced that version (tags and all) could carry it, and in a round of concurrent
    deliveries a destination write based on an earlier read may land last."""
    if rewrite.t0 < tagging.t1:
        return True  # not this case: the tag is on the rewritten version or raced it
    round_ = next((r for r in rounds if r[0] <= tagging.t0 <= r[1]), None)
    if round_ is not None and round_[2] > 1:
        return False
    return any(r.key == tagging.key and r.method == "GET" and "tagging" in r.query
               and tagging.t1 <= r.started and r.finished <= rewrite.t0 for r in records)


def problems_after(emulator, prefix: str, data: dict[str, bytes], reported: dict[str, str], journal: Journal,
                   records) -> list[str]:
    problems = []
    rewritten = {r.key: r for r in journal.rewrites}
    # Bytes never lost.
    for name, original in data.items():
        key = f"{prefix}{name}"
        held = [emulator.object_bytes(BUCKET, k) for k in places_of(emulator, prefix, name)]
        if key not in rewritten:
            if original not in held:
                problems.append(f"{key}: its bytes are lost")
            continue
        rewrite = rewritten[key]
        if rewrite.data not in held:
            deleted_in_window = any(
                r.method == "DELETE" and r.key == key and not r.query and r.finished >= rewrite.t0 and any(
                    h.method == "HEAD" and h.key == key and h.started <= rewrite.t1 and h.finished <= r.started
                    and not any(h2.method == "HEAD" and h2.key == key and h.started < h2.started < r.started
                                for h2 in records) for h in records) for r in records)
            if not deleted_in_window:
                problems.append(f"{key}: the rewriter's bytes are lost outside the delete window")
    # Verdict tags only on bytes they are true of.
    for name in (*data, "gone"):
        for place in places_of(emulator, prefix, name):
            tags = emulator.tags(BUCKET, place) or {}
            if tags.get("ci-job") != J1:
                continue
            matches = md5(emulator.object_bytes(BUCKET, place)) == reported[name]
            if tags.get("ci-verify") == "verified" and not matches:
                problems.append(f"{place}: tagged verified, but its bytes do not hash to CI's MD5")
            if tags.get("ci-verify") == "mismatch" and matches:
                problems.append(f"{place}: tagged mismatch, but its bytes are CI's")
    # No user tag lost outside the windows.
    for tagging in journal.taggings:
        name = tagging.key.split(prefix, 1)[1]
        holders = [k for k in places_of(emulator, prefix, name) if emulator.object_bytes(BUCKET, k) == tagging.data]
        if not holders:
            continue  # that version is gone: rewritten by its owner
        if any(tagging.name in (emulator.tags(BUCKET, k) or {}) for k in holders):
            continue
        if tagging.key in rewritten and not carried_before_rewrite(records, tagging, rewritten[tagging.key],
                                                                    journal.rounds):
            continue  # its owner replaced the version it was on before a move could read it (README)
        windows = loss_windows(records, tagging.key, journal.rounds)
        if not any(start <= tagging.t1 and tagging.t0 <= end for start, end in windows):
            problems.append(f"{tagging.key}: the user's tag {tagging.name} was lost outside the residual windows "
                            f"(now at {holders} with {[emulator.tags(BUCKET, k) for k in holders]})")
    # Another job's objects are never touched.
    theirs = {f"quarantine/{prefix}gone": (b"J2's corrupt output", {"ci-verify": "mismatch", "ci-job": J2}),
              f"{prefix}j2": (b"J2's verified output", {"ci-verify": "verified", "ci-job": J2, "owner": "j2"})}
    for key, (content, tags) in theirs.items():
        if emulator.object_bytes(BUCKET, key) != content or emulator.tags(BUCKET, key) != tags:
            problems.append(f"{key}: another job's object was changed")
        if any(r.key == key and r.is_write for r in records):
            problems.append(f"{key}: another job's object received a write")
    return problems


# CI runs a fixed, reproducible set of schedules; elsewhere each run explores new ones.
@settings(max_examples=SCHEDULES, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(schedule=schedules)
def test_random_schedules_keep_the_invariants(world, schedule):
    emulator, apps = world
    config, plan = schedule
    prefix = f"s{next(_numbers)}/"
    body, data, reported = setup(emulator, prefix)
    emulator.clear_requests()
    journal = Journal()
    for rnd in plan:
        deliver_round(emulator, apps[config], body, prefix, rnd, journal)
    problems = problems_after(emulator, prefix, data, reported, journal, emulator.requests)
    assert not problems, f"{config} {plan}: {problems}"
