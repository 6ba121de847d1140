"""`python3 dev.py run EVENT`: every kind of result is printed, and a RetryLater is one line."""
from __future__ import annotations

import socket

import pytest

from localcloud.runner import ROOT, run_file
from tests.conftest import ALLOWED_BUCKETS, CALLBACK_TOKEN, SECRET_ID, SECRET_KEY, TOKEN
from tests.samples import REGION

CLEARED = ("REPORT_PREFIX", "RECONCILE_BUCKETS", "RECONCILE_QUEUES", "DEFAULT_REGION", "TENCENTCLOUD_REGION",
           "DISPATCH", "ALLOW_UNAUTHENTICATED", "ACTION_VERIFIED", "ACTION_FAILED", "ALLOWED_PREFIXES")


def configure(monkeypatch, endpoint: str) -> None:
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                        "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": endpoint,
                        "CALLBACK_TOKEN": CALLBACK_TOKEN, "ALLOWED_BUCKETS": ALLOWED_BUCKETS,
                        "VERIFY_WITH_CI": "false", "LOG_LEVEL": "ERROR"}.items():
        monkeypatch.setenv(name, value)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_timer_event_prints_the_sweep_result(emulator, monkeypatch, capsys):
    configure(monkeypatch, emulator.endpoint)
    monkeypatch.setenv("DEFAULT_REGION", REGION)  # the sweep looks for ALLOWED_BUCKETS' jobs in this region
    assert run_file(str(ROOT / "events" / "timer.json")) == 0
    out = capsys.readouterr().out
    assert '"sweep": {' in out


@pytest.mark.slow
def test_retry_later_from_a_worker_sample_is_one_line(monkeypatch, capsys):
    configure(monkeypatch, f"http://127.0.0.1:{closed_port()}")  # COS unreachable: a transient failure
    assert run_file(str(ROOT / "events" / "async-worker.json")) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line and not line.startswith("{")]  # the log is JSON
    assert len(lines) == 1 and lines[0].startswith("RetryLater: "), captured.out
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("sample", ["function-url-failed-job.json"])
def test_http_answers_still_print_status_and_body(emulator, monkeypatch, capsys, sample):
    configure(monkeypatch, emulator.endpoint)
    assert run_file(str(ROOT / "events" / sample)) == 0
    assert capsys.readouterr().out.startswith("HTTP ")
