"""Prove that the shipped code runs on SCF's Python 3.10: `python3 dev.py compat [PYTEST ARGS]`.

1. Always: vermin reads index.py and handlers/ and fails on anything newer than 3.10
   (3.11 syntax such as `except*`, modules such as tomllib, members such as datetime.UTC).
2. When a CPython 3.10 interpreter is on this machine: the test suite under it, in
   build/venv-py310/ (requirements-py310.txt; made on first use, reinstalled when the
   requirements change). Without one, a warning says that only the static check ran.

An interpreter is looked for in $PYTHON310, `python3.10` on PATH, pyenv's versions and /usr.

Under 3.10 the property-based runs (fuzz, drift, concurrency, soak) take a smaller size and the
tests of tooling alone (benchmarks, emulators, dev.py, serverless.yml) are left out: the run
is there to show that the shipped code behaves the same on 3.10, and the full sizes and the
tooling have already run under the main interpreter in the same CI.
Set the variables (FUZZ_EXAMPLES, ...) to choose other sizes.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("index.py", "handlers")
TARGET = "3.10"
VENV = ROOT / "build" / "venv-py310"
REQUIREMENTS = ("requirements-py310.txt", "requirements.txt", "requirements-lock.txt")
# The sizes under 3.10: every property still runs, on fewer examples.
REDUCED_SIZES = {"FUZZ_EXAMPLES": "2100", "DRIFT_EXAMPLES": "10", "CONCURRENCY_SCHEDULES": "40",
                 "SOAK_CALLBACKS": "30", "SCHEDULES_ALL_MODES": "30", "RECONCILE_SCHEDULES": "10"}
# Tests of tooling only (the benchmarks, the emulators, dev.py, serverless.yml), which never runs
# in SCF: under the main interpreter only. The deploy package's own test stays: it runs the
# unpacked package's report command, which SCF's Python 3.10 must run too.
LEFT_OUT = ("tests/tooling/test_bench.py", "tests/localcloud", "tests/tooling/test_dev.py", "tests/tooling/test_serve.py",
            "tests/tooling/test_serverless_yml.py")
_IS_CPYTHON_310 = "import sys; print(sys.implementation.name == 'cpython' and sys.version_info[:2] == (3, 10))"


def find_python310() -> str | None:
    """A CPython 3.10 interpreter that actually runs (pyenv's shims exist even when it does not)."""
    candidates = [os.environ.get("PYTHON310", ""), shutil.which("python3.10") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")), reverse=True)
    candidates += ["/usr/bin/python3.10", "/usr/local/bin/python3.10"]
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-c", _IS_CPYTHON_310], capture_output=True, text=True, timeout=30,
                                   check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


def static_check() -> int:
    """vermin over the shipped code: exit status 0 when it needs Python 3.10 or older."""
    print(f"vermin: {' '.join(SHIPPED)} must run on Python {TARGET}", flush=True)
    command = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",  # it has no __main__
               f"--target={TARGET}-", "--violations", "--no-tips", "--eval-annotations", *SHIPPED]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def environment(python: str) -> Path:
    """build/venv-py310's interpreter, with requirements-py310.txt installed."""
    executable = VENV / "bin" / "python"
    stamp = VENV / ".requirements.sha256"
    wanted = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in REQUIREMENTS)).hexdigest()
    if executable.exists() and stamp.exists() and stamp.read_text() == wanted:
        return executable
    if VENV.exists():
        shutil.rmtree(VENV)
    print(f"creating {VENV.relative_to(ROOT)} with {python}", flush=True)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    print("installing requirements-py310.txt", flush=True)
    subprocess.run([str(executable), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(ROOT / "requirements-py310.txt")], check=True)
    stamp.write_text(wanted)
    return executable


def main(argv: list[str] | None = None) -> int:
    pytest_args = list(sys.argv[1:] if argv is None else argv)
    if static_check() != 0:
        print(f"compat: the shipped code needs a Python newer than {TARGET} (vermin's list above)", file=sys.stderr)
        return 1
    python = find_python310()
    if python is None:
        print(f"WARNING: no CPython {TARGET} on this machine: only the static check ran; "
              f"set PYTHON310 to an interpreter to run the tests under it", file=sys.stderr)
        return 0
    executable = environment(python)
    print(f"pytest under {subprocess.check_output([str(executable), '--version'], text=True).strip()}", flush=True)
    command = [str(executable), "-m", "pytest", "-p", "no:cacheprovider",
               *(f"--ignore={path}" for path in LEFT_OUT), *pytest_args]
    env = {**REDUCED_SIZES, **os.environ}
    print("compat sizes: " + ", ".join(f"{name}={env[name]}" for name in REDUCED_SIZES), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
