#!/usr/bin/env python3
"""Developer commands; needs only Python 3. It creates .venv on first use.

    python3 dev.py demo              start the local COS emulator and run every sample event
    python3 dev.py test [ARGS]       run the test suite (ARGS go to pytest)
    python3 dev.py run EVENT         run one event file through index.main_handler
    python3 dev.py serve [--port N]  the function behind a local Function URL, COS emulator seeded
    python3 dev.py package           build dist/ci-callback-verifier.zip (and build/package/) for SCF
    python3 dev.py compat [ARGS]     the shipped code against Python 3.10: vermin, then the tests
                                     under CPython 3.10 when the machine has one (ARGS go to pytest)
    python3 dev.py bench [--quick]   the benchmarks: a table, and bench/results.json
    python3 dev.py lint              ruff over everything, mypy --strict over the shipped code
"""
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt", "requirements-lock.txt")
COMMANDS = {
    "demo": ["-m", "localcloud", "demo"],
    "test": ["-m", "pytest"],
    "run": ["-m", "localcloud", "run"],
    "serve": ["-m", "localcloud", "serve"],
    "package": ["-m", "localcloud.package"],
    "compat": ["-m", "localcloud.compat"],
    "bench": ["-m", "bench"],
}
# Commands that are several tools in a row; the first failure ends the run.
SEQUENCES = {
    "lint": (["-m", "ruff", "check"], ["-m", "mypy"]),
}


def ensure_environment() -> None:
    stamp = VENV / ".requirements.sha256"
    wanted = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in REQUIREMENTS)).hexdigest()
    if PYTHON.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    print("installing requirements-dev.txt", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(ROOT / "requirements-dev.txt")], check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {*COMMANDS, *SEQUENCES}:
        print(__doc__.strip())
        return 2
    ensure_environment()
    steps = SEQUENCES.get(argv[0]) or ([*COMMANDS[argv[0]], *argv[1:]],)
    for step in steps:
        code = subprocess.run([str(PYTHON), *step], cwd=ROOT).returncode
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
