"""The README and docs/ as a newcomer uses them: their commands run as printed, and the settings
they document are the ones the code reads.

The blocks to run are marked in the Markdown with `<!-- test: NAME -->` on the line before their
fence, so a changed command is a failing test here, not a newcomer's broken afternoon:

- README `quickstart`: run as printed; every line of `quickstart-output` must be in what it prints;
- README `serve` and `local-run`: the server started as printed, its printed `export` line pasted
  into a second shell, then `local-run` as printed (and it must be what the server says to run);
- docs/deployment.md `deploy-settings` and `smoke`: the settings a deployer exports, put into
  serverless.yml's environment, and the smoke test's `curl`s against the function behind a local
  Function URL with that configuration: each answer must be the one written under its command.
"""
from __future__ import annotations

import ast
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from handlers.app import App, create
from localcloud.cos import CosEmulator
from localcloud.runner import ROOT
from localcloud.serve import FunctionUrlServer
from tests.tooling.test_serverless_yml import SET_BY_SCF, known_variables

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
DEPLOYMENT = DOCS / "deployment.md"
SHELL_SECONDS = 300  # dev.py may have to create .venv first
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")
MARKED = re.compile(r"^<!-- test: ([\w-]+) -->\n(?:[ \t]*\n)*[ \t]*```[\w-]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> dict[str, str]:
    """The fenced blocks marked `<!-- test: NAME -->`, by name."""
    found: dict[str, str] = {}
    for name, body in MARKED.findall(path.read_text()):
        assert name not in found, f"{path.name}: two blocks are marked {name}"
        found[name] = body
    return found


def commands(block: str) -> list[str]:
    """The block's command lines: comments and blank lines dropped, trailing comments too."""
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def documented_variables() -> dict[str, list[str]]:
    """Each variable docs/configuration.md documents, with its table row's cells."""
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            assert name not in rows, f"{name} is documented twice in configuration.md"
            rows[name] = cells
    return rows


def newcomer_environment() -> dict[str, str]:
    """The environment of a shell where none of the function's settings is set."""
    settings = documented_variables()
    return {k: v for k, v in os.environ.items() if k not in settings and k != "PYTHONPATH"}


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=SHELL_SECONDS)


# --- the blocks are there ------------------------------------------------------------------------

def test_the_readme_marks_the_blocks_it_promises_run():
    assert {"quickstart", "quickstart-output", "serve", "local-run"} <= set(blocks(README))
    assert {"deploy-settings", "smoke"} <= set(blocks(DEPLOYMENT))


def test_the_readme_stays_a_one_page_guide():
    """Issue 21: about 350 lines at most, each table cell one or two lines."""
    text = README.read_text()
    assert len(text.splitlines()) <= 360
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            longest = max(len(cell.strip()) for cell in cells)
            assert longest <= 130, f"README.md:{number}: a table cell of {longest} characters"


def test_every_link_to_docs_leads_to_a_file():
    for path in [README, *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(((?:docs/|\.\./)?[\w./-]+\.md)(?:#[\w-]*)?\)", path.read_text()):
            assert (path.parent / target).resolve().exists(), f"{path.name} links to {target}, which is not there"


# --- README: quick start, and a local run ----------------------------------------------------------

@pytest.mark.slow
def test_the_quick_start_runs_as_printed_and_prints_what_the_readme_shows():
    marked = blocks(README)
    done = run_shell(marked["quickstart"], ROOT, newcomer_environment())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = {line.rstrip() for line in done.stdout.splitlines()}
    shown = [line.rstrip() for line in marked["quickstart-output"].splitlines() if line.strip()]
    missing = [line for line in shown if line not in printed]
    assert not missing, f"the README shows lines the demo does not print: {missing}"


class Server:
    """The README's `serve` block, started as printed (on free ports: the test machine's 9000 may be taken)."""

    def __init__(self, command: str, env: dict[str, str]):
        self.process = subprocess.Popen(["bash", "-c", f"exec {command} --port 0 --cos-port 0"], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def started(self, seconds: float = SHELL_SECONDS) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith("serving;"):
                return list(self.output)
        pytest.fail("dev.py serve did not start:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dev.py passes it on to the server it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.mark.slow
def test_the_local_run_works_with_the_export_line_serve_prints():
    marked = blocks(README)
    (serve,) = commands(marked["serve"])
    env = newcomer_environment()
    server = Server(serve, env)
    try:
        printed = [line.strip() for line in server.started()]
        exports = [line for line in printed if line.startswith("export ")]
        assert len(exports) == 1, f"dev.py serve printed no single export line:\n{printed}"
        # What the README tells to run is what the server itself suggests, and the other way round.
        suggested = [line for line in printed[printed.index(exports[0]) + 1:] if line.startswith("python3 dev.py ")]
        assert commands(marked["local-run"]) == suggested
        done = run_shell(exports[0] + "\n" + marked["local-run"], ROOT, env)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"^HTTP 200$", done.stdout, re.MULTILINE), done.stdout[-3000:]
    assert re.search(r"verified\s+2", done.stdout), done.stdout[-3000:]  # the report: both outputs verified
    assert "problems: none" in done.stdout


# --- docs/deployment.md: the smoke test, with the configuration it had you write -----------------

SECRET_ID, SECRET_KEY, SESSION = "AKIDsmoke000000000000000000000000", "smoke-secret-key", "smoke-session-token"


def deployed_environment(exported: dict[str, str], endpoint: str) -> dict[str, str]:
    """serverless.yml's environment with the deployer's exports in its placeholders, and what SCF sets."""
    inputs = yaml.safe_load((ROOT / "serverless.yml").read_text())["inputs"]
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
           "TENCENTCLOUD_SESSIONTOKEN": SESSION, "TENCENTCLOUD_REGION": inputs["region"],
           "SCF_FUNCTIONNAME": "ci-callback-verifier-dev", "SCF_NAMESPACE": "default", "COS_ENDPOINT": endpoint}
    for name, value in inputs["environment"]["variables"].items():
        env[name] = re.sub(r"\$\{env:(\w+)\}", lambda m: exported[m.group(1)], str(value))
    return env


def test_the_smoke_test_answers_what_deployment_md_says(tmp_path):
    marked = blocks(DEPLOYMENT)
    names = sorted(set(re.findall(r"^export (\w+)=", marked["deploy-settings"], re.MULTILINE)))
    assert names == ["ALLOWED_BUCKETS", "CALLBACK_TOKEN"]
    shown = run_shell(marked["deploy-settings"] + "".join(f'\necho "${name}"' for name in names),
                      tmp_path, newcomer_environment())
    assert shown.returncode == 0, shown.stderr
    exported = dict(zip(names, shown.stdout.splitlines(), strict=True))
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=SESSION) as emulator:
        for bucket in exported["ALLOWED_BUCKETS"].split(","):
            emulator.create_bucket(bucket, region="ap-chongqing")
        app = create(deployed_environment(exported, emulator.endpoint))
        assert isinstance(app, App), app
        server = FunctionUrlServer(("127.0.0.1", 0), app.handle, log=lambda line: None)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            fixtures = tmp_path / "tests" / "fixtures"
            fixtures.mkdir(parents=True)
            shutil.copy(ROOT / "tests" / "fixtures" / "voice_separate_task.xml", fixtures)
            script = marked["smoke"].replace("https://<function-url>/", server.url)
            done = run_shell(script, tmp_path, {**newcomer_environment(), **exported})
            requests = emulator.requests
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            app.close()
    assert done.returncode == 0, done.stderr
    expected = [line[2:] for line in marked["smoke"].splitlines() if line.startswith("# ")]
    assert done.stdout.splitlines() == expected
    # "None of these writes anything": CI was asked once (the third), COS never.
    assert [(r.service, r.method) for r in requests] == [("ci", "GET")]


# --- docs/configuration.md: every variable read is documented, with its default --------------------

class Recording(dict):
    """An environment that remembers every name the code asks it for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def __getitem__(self, name):
        self.asked.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self.asked.add(name)
        return super().get(name, default)

    def __contains__(self, name):
        self.asked.add(name)
        return super().__contains__(name)


def variables_read() -> set[str]:
    """The code's own reading of the environment (a cold start, in a few shapes that take other
    branches), and every name the shipped code spells where it reads the environment."""
    asked: set[str] = set()
    base = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "CALLBACK_TOKEN": "example-token-0123456789", "ALLOWED_BUCKETS": "examplebucket-1250000000"}
    for extra in ({}, {"DEFAULT_REGION": "ap-chongqing"}, {"ALLOWED_BUCKETS": "*"}):
        env = Recording({**base, **extra})
        app = create(env)
        if isinstance(app, App):
            app.close()
        asked |= env.asked
    return {name for name in asked | known_variables() if VARIABLE.fullmatch(name)}


def test_every_variable_the_code_reads_is_documented_and_every_documented_one_is_read():
    documented = set(documented_variables())
    read = variables_read()
    assert not read - documented, f"document these in docs/configuration.md: {sorted(read - documented)}"
    assert not documented - read, f"no code reads these documented variables: {sorted(documented - read)}"


def test_every_documented_variable_has_a_default():
    empty = [name for name, cells in documented_variables().items() if len(cells) < 4 or not cells[1]]
    assert not empty, f"give these a default in docs/configuration.md: {empty}"
    scf = {name for name, cells in documented_variables().items() if cells[1].startswith("set by SCF")}
    assert scf <= SET_BY_SCF


def _constant(node: ast.AST, names: dict[str, object]) -> object:
    """A constant expression of a settings module (`1 << 20`, `7 * 24 * 60`, a module constant)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Tuple):
        return tuple(_constant(element, names) for element in node.elts)
    if isinstance(node, ast.BinOp):
        left, right = _constant(node.left, names), _constant(node.right, names)
        operations = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                      ast.LShift: lambda a, b: a << b}
        return operations[type(node.op)](left, right)
    raise ValueError(ast.dump(node))


def readings() -> list[tuple[str, str, tuple[object, ...]]]:
    """Each `integer`/`choice`/`flag` reading of a variable in the settings code: (kind, name, arguments)."""
    found = []
    sources = [ROOT / "handlers" / "config.py", *sorted((ROOT / "handlers").rglob("settings.py"))]
    module_constants: dict[str, object] = {}
    trees = [ast.parse(path.read_text(), str(path)) for path in sources]
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    module_constants[node.targets[0].id] = _constant(node.value, module_constants)
                except (ValueError, KeyError, TypeError):
                    pass
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")).lstrip("_")
            if kind not in ("integer", "choice", "flag"):
                continue
            at = next((i for i, a in enumerate(node.args) if isinstance(a, ast.Constant)
                       and isinstance(a.value, str) and VARIABLE.fullmatch(a.value)), None)
            if at is None:
                continue
            try:
                arguments = tuple(_constant(a, module_constants) for a in node.args[at + 1:])
            except (ValueError, KeyError):
                continue
            found.append((kind, node.args[at].value, arguments))
    return found


def test_the_documented_defaults_and_ranges_are_the_codes():
    rows = documented_variables()
    checked = 0
    for kind, name, arguments in readings():
        _, default, accepted, _ = rows[name][:4]
        if kind == "integer":
            value, low, high = arguments
            assert re.search(rf"`{value}`", default), f"{name}: the code's default is {value}, the doc says {default}"
            assert f"{low}–{high}" in accepted, f"{name}: the code accepts {low}–{high}, the doc says {accepted}"
        elif kind == "choice":
            allowed, value = arguments
            assert value.lower() in default.lower(), f"{name}: the code's default is {value}, the doc says {default}"
            assert all(f"`{word}`" in accepted.lower() for word in allowed), f"{name}: the code accepts {allowed}"
        else:
            (value,) = arguments
            assert f"`{str(value).lower()}`" in default, f"{name}: the code's default is {value}, the doc says {default}"
        checked += 1
    assert checked >= 15  # the settings code still reads its variables this way


def test_the_readme_settings_are_the_documented_ones_with_the_same_default():
    rows = documented_variables()
    text = README.read_text()
    section = text[text.index("## Essential settings"):text.index("## Answers, verdicts and outcomes")]
    shown = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in section.splitlines()
             if line.startswith("| `")]
    assert len(shown) >= 14
    for cells in shown:
        (name,) = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        assert name in rows, f"the README shows {name}, which docs/configuration.md does not document"
        assert cells[1] == rows[name][1], f"{name}: the README's default {cells[1]} is not configuration.md's"
