"""python -m bench [--quick] [--output PATH]: every figure beside its baseline or limit, in one run.

Prints a Markdown table and writes the figures to bench/results.json. `--quick` runs the same
measurements at a reduced size (seconds, not minutes) so that CI keeps them working.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import cold_start, critical_path, package_size, parsing, ranged, server_mode, streaming
from bench import scale as sweep_scale
from bench.figures import Figure, table, write_json

RESULTS = Path(__file__).resolve().parent / "results.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    outputs: int  # of the many-output callback
    runs: int  # of each critical-path measurement (the median counts)
    naive_runs: int
    object_bytes: int  # streamed and hashed
    ranged_bytes: int  # read in ranges over several connections
    import_runs: int  # fresh processes per import figure
    parse_rounds: int
    sweep: sweep_scale.Size  # the reconciliation sweep's jobs


FULL = Scale(outputs=200, runs=5, naive_runs=1, object_bytes=1 << 30, ranged_bytes=2 << 30, import_runs=15,
             parse_rounds=400, sweep=sweep_scale.FULL)
QUICK = Scale(outputs=20, runs=1, naive_runs=1, object_bytes=32 << 20, ranged_bytes=64 << 20, import_runs=3,
              parse_rounds=20, sweep=sweep_scale.QUICK)


def machine(quick: bool) -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text() if cpuinfo.exists() else "").splitlines()
              if line.startswith("model name")]
    return {"cpus": os.cpu_count(), "cpu": models[0] if models else platform.processor(),
            "python": platform.python_version(), "platform": platform.platform(), "quick": quick}


def run(scale: Scale) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        package, tree = _timed("deploy package", package_size.measure, Path(work))
        return [
            *_timed("critical path", critical_path.measure, scale.outputs, scale.runs, scale.naive_runs),
            *_timed("streaming verification", streaming.measure, scale.object_bytes),
            *_timed("ranged verification", ranged.measure, scale.ranged_bytes),
            *_timed("server mode", server_mode.measure, scale.outputs),
            *_timed("cold start", cold_start.measure, scale.import_runs, tree),  # also from the package's tree
            *_timed("parse cost", parsing.measure, scale.parse_rounds),
            *_timed("sweep at scale", sweep_scale.measure, scale.sweep),
            *package,
        ]


def _timed(title: str, measure: Callable[..., T], *args: Any) -> T:
    print(f"bench: {title} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = measure(*args)
    print(f"bench: {title}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, for CI")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where to write the figures ({RESULTS.name})")
    args = parser.parse_args(argv)
    figures = run(QUICK if args.quick else FULL)
    print(table(figures))
    write_json(figures, args.output, machine(args.quick))
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
