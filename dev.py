#!/usr/bin/env python3
"""Developer commands; needs only Python 3. It creates .venv on first use.

    python3 dev.py demo              start the local COS emulator and run every sample event
    python3 dev.py test [ARGS]       run the test suite (ARGS go to pytest); --quick leaves out the
                                     tests marked slow, for the inner loop (CI runs them all)
    python3 dev.py run EVENT         run one event file through index.main_handler
    python3 dev.py serve [--port N] [--cos-port N]  the function behind a local Function URL, COS emulator seeded
    python3 dev.py package           build dist/ci-callback-verifier.zip (and build/package/) for SCF
    python3 dev.py compat [ARGS]     the shipped code against Python 3.10: vermin, then the tests
                                     under CPython 3.10 when the machine has one (ARGS go to pytest)
    python3 dev.py bench [--quick]   the benchmarks: a table, and bench/results.json
    python3 dev.py lint              ruff over everything, mypy --strict over the shipped code, and
                                     import-linter: the layers of handlers/ (docs/architecture.md)
    python3 dev.py report --bucket B [--region R] [--since 24h] [--prefix P] [--format table|json|csv]
                                     what the function decided, from the audit reports or the tags
    python3 dev.py reconcile --bucket B --since 30d [--queue Q] [--tags T,...] [--region R]
                                     check a period of history as the sweep does (resumable), then
                                     the report's summary
"""
import hashlib
import os
import signal
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
    "report": ["-m", "handlers.summary"],
    "reconcile": ["-m", "handlers.backfill"],
}
# Commands whose arguments name the caller's files: they run in the caller's directory.
IN_CALLERS_DIRECTORY = {"run"}
# Commands that are several tools in a row; the first failure ends the run.
SEQUENCES = {
    "lint": (["-m", "ruff", "check"], ["-m", "mypy"],
             # The layers of handlers/ (pyproject.toml, docs/architecture.md). import-linter has no
             # `python -m` entry: its console script's function, run by the venv's interpreter.
             ["-c", "import sys; from importlinter.cli import lint_imports_command as lint; "
                    "sys.exit(lint(['--no-cache', '--no-logo']))"]),
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


def run(command: list[str], cwd: Path, env: "dict[str, str] | None" = None) -> int:
    """Run one child, passing on the signals dev.py receives (SIGTERM from a supervisor, a
    `kill`, a closed terminal): without that the child outlives dev.py, serving its port."""
    child = subprocess.Popen(command, cwd=cwd, env=env)
    forwarded = []

    def forward(signum, _frame):
        # Ctrl-C reaches every process of the terminal's foreground group, the child included:
        # sending it again would interrupt the child's own clean-up.
        if signum == signal.SIGINT and _in_terminal_foreground():
            return
        forwarded.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    names = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
    signums = [getattr(signal, name) for name in names if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, forward) for signum in signums}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if code < 0:  # ended by a signal: the shell's convention
        return 128 - code
    return code if code or not forwarded else 128 + forwarded[0]


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, AttributeError, ValueError):
        return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {*COMMANDS, *SEQUENCES}:
        print(__doc__.strip())
        return 2
    ensure_environment()
    args = argv[1:]
    if argv[0] == "test" and "--quick" in args:  # the inner loop: everything not marked slow (pytest.ini)
        args = ["-m", "not slow", *(arg for arg in args if arg != "--quick")]
    steps = SEQUENCES.get(argv[0]) or ([*COMMANDS[argv[0]], *args],)
    cwd, env = ROOT, None
    if argv[0] in IN_CALLERS_DIRECTORY:
        # The caller's relative paths stay theirs; the project is found through PYTHONPATH.
        cwd, env = Path.cwd(), dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    for step in steps:
        code = run([str(PYTHON), *step], cwd, env)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
