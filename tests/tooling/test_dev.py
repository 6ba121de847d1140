"""dev.py itself: signals reach the command it runs, and paths are the caller's."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from localcloud.runner import ROOT
from tests.conftest import function_env
from tests.samples import REGION

DEV_PY = ROOT / "dev.py"
STARTUP_SECONDS = 60
SERVE_SETTINGS = ("CALLBACK_TOKEN", "ALLOWED_BUCKETS", "COS_ENDPOINT", "REPORT_PREFIX", "DISPATCH")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc), to end any a failing dev.py leaves behind."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_sigterm_on_dev_py_stops_the_server_it_started():
    port = free_port()
    started: list[int] = []
    env = {k: v for k, v in os.environ.items() if k not in SERVE_SETTINGS}
    dev = subprocess.Popen([sys.executable, str(DEV_PY), "serve", "--port", str(port), "--cos-port", "0"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: listening(port), STARTUP_SECONDS), "dev.py serve never listened"
        started = children(dev.pid)
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=20)
        assert wait_for(lambda: not listening(port), 10), f"port {port} still served after dev.py ended"
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
        for pid in started:  # what dev.py started, if it was left running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_run_reads_a_relative_event_path_from_the_callers_directory(emulator, tmp_path):
    (tmp_path / "myevents").mkdir()
    (tmp_path / "myevents" / "x.json").write_text(json.dumps({"Type": "Timer", "TriggerName": "reconcile",
                                                                "Time": "2026-11-23T12:00:00Z", "Message": ""}))
    env = {k: v for k, v in os.environ.items() if k not in SERVE_SETTINGS}
    env.update(function_env(emulator), LOG_LEVEL="ERROR", DEFAULT_REGION=REGION)
    done = subprocess.run([sys.executable, str(DEV_PY), "run", "myevents/x.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"sweep": {' in done.stdout


def test_dev_py_report_summarises_the_audit_reports_and_gates_on_problems(emulator, make_app, tmp_path):
    """`python3 dev.py report`, from any directory, against the emulator: the audit report of
    a mismatching job, summarised, and exit status 1 (a cron job or CI step can gate on it)."""
    from tests.conftest import http_event, invoke, md5
    from tests.samples import BUCKET, REGION, job_xml

    emulator.put_object(BUCKET, "out/r.mp3", b"not what CI wrote")
    status, _, _ = invoke(make_app(REPORT_PREFIX="ci-reports/"),
                          http_event(job_xml({"out/r.mp3": md5(b"what CI wrote")}, ["out/r.mp3"])))
    assert status == 200
    env = {k: v for k, v in os.environ.items() if k not in SERVE_SETTINGS}
    env.update(function_env(emulator), REPORT_PREFIX="ci-reports/")
    done = subprocess.run([sys.executable, str(DEV_PY), "report", "--bucket", BUCKET, "--region", REGION,
                           "--format", "json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["source"] == "reports" and summary["objects"] == {"mismatch": 1}
    assert [p["key"] for p in summary["problems"]] == ["out/r.mp3"]
