"""`python -m bench --quick` runs every benchmark at a reduced size, so none of them rots.
Figures vary with the machine: only their presence is checked, never a time."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from localcloud.runner import ROOT

pytestmark = pytest.mark.slow  # every benchmark at a reduced size

FIGURES = (
    "critical path, 2 outputs", "critical path, 2 outputs, CI cross-check on",
    "critical path, 2 outputs, sweep configured", "critical path, 20 outputs",
    "function CPU per COS request, 20 outputs", "COS requests, 2 outputs", "COS requests, 20 outputs",
    "callback time, 2 outputs", "callback time, 20 outputs",
    "streaming verification, 32 MiB", "peak memory growth, 32 MiB", "naive verification, 32 MiB",
    "naive peak memory growth, 32 MiB",
    "ranged verification, 64 MiB, 4 connections capped", "one-connection verification, 64 MiB, capped",
    "ranged peak memory growth, 64 MiB", "ranged verification, 64 MiB, uncapped",
    "server mode: bytes through the function per verified byte, 20 multipart outputs",
    "server mode: bytes through the function per verified byte, one 128 MiB output (FileHashCode job)",
    "server mode: requests, 20 multipart outputs", "server mode: round trips, 20 multipart outputs",
    "server mode: callback time, 20 multipart outputs",
    "cold-start import", "cold-start import, as deployed (no bytecode)", "first invocation after import, 2 outputs",
    "parse, documented XML callbacks", "parse, documented JSON callbacks",
    "sweep: requests per job in the window, steady state (200 jobs, 20 new), 20 ms a request",
    "sweep: function CPU per job in the window, steady state (200 jobs, 20 new), 20 ms a request",
    "sweep: tick time, steady state (200 jobs, 20 new), 20 ms a request",
    "sweep: ticks to verify 100 lost callbacks among 200 jobs, 60 s timeout",
    "sweep: invocations past their 60 s limit during that catch-up",
    "sweep: most jobs a minute one tick keeps up with, 60 s timeout",
    "sweep: most jobs a minute one tick keeps up with, 900 s timeout",
    "deploy package (zip)",
)
FIELDS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "ratio_is", "target", "met", "note"}
# Measured from the deploy package, which needs the package index: without it they say why instead.
NEED_THE_PACKAGE = {"cold-start import, as deployed (no bytecode)", "deploy package (zip)"}


def test_quick_benchmark_writes_every_figure(tmp_path):
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(results.read_text())
    figures = {figure["name"]: figure for figure in document["figures"]}
    assert tuple(figures) == FIGURES
    for name, figure in figures.items():
        assert set(figure) == FIELDS, name
        if figure["value"] is None:
            assert name in NEED_THE_PACKAGE and figure["note"], name
        else:
            assert isinstance(figure["value"], (int, float)) and isinstance(figure["baseline_value"], (int, float))
        assert name in done.stdout  # the printed table
    assert document["machine"]["quick"] is True
