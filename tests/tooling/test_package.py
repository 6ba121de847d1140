"""The deploy package: `python3 dev.py package` builds what SCF's Python 3.10 runs.

Built once per session (about 10 s, from PyPI; crcmod's wheel is cached in build/wheels/).
The zip is then unpacked and run in a bare interpreter: CPython 3.10 when the machine has it,
with no site-packages at all, so an import that only works thanks to the dev environment fails.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile

import pytest

from localcloud.compat import find_python310
from localcloud.package import (
    LOCK,
    MAX_ZIP_BYTES,
    SHIPPED,
    Package,
    build,
    canonical,
    read_lock,
)
from localcloud.runner import ROOT
from localcloud.samples import manifest, restamp, sample_bytes
from localcloud.serve import http_body
from tests.conftest import function_env, http_event
from tests.samples import BUCKET

pytestmark = pytest.mark.slow  # builds the deploy package and runs it under Python 3.10

NEVER_SHIPPED = ("localcloud", "tests", "bench", "events", "build", "dist", ".venv", ".git", ".ci", "dev.py",
                 "serverless.yml", "README.md", "requirements.txt", "requirements-dev.txt", "requirements-lock.txt")
SAMPLE = ROOT / "events" / "function-url-task-xml.json"
CRC64_XZ_CHECK = 0x995DC9BBDF1939FA  # CRC-64/XZ of b"123456789" (COS's x-cos-hash-crc64ecma)

# Runs in the bare interpreter, the unpacked package as its code directory (SCF's /var/user).
RUN_IN_PACKAGE = r"""
import json, sys, sysconfig
tree = sys.argv[1]
sys.path.insert(0, tree)
import index
import crcmod
event = json.loads(sys.stdin.read())
result = index.main_handler(event, {"request_id": "package-test", "time_limit_in_ms": 30000})
crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)(b"123456789")
homes = (tree, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
outside = sorted(name for name, module in list(sys.modules.items())
                 if getattr(module, "__file__", None) and not module.__file__.startswith(homes))
print("RESULT " + json.dumps({"result": result, "version": list(sys.version_info[:2]), "outside": outside,
                              "crcExtension": sys.modules["crcmod.crcmod"]._usingExtension, "crc64": crc64}))
"""


@pytest.fixture(scope="session")
def package(tmp_path_factory) -> Package:
    work = tmp_path_factory.mktemp("package")
    built = build(build_dir=work / "tree", zip_path=work / "dist" / "ci-callback-verifier.zip", log=lambda *_: None)
    print(f"\npackage: {built.zip_bytes / 2**20:.2f} MiB, {len(zip_names(built))} entries, built in {built.seconds:.1f} s")
    return built


def zip_names(package: Package) -> list[str]:
    with zipfile.ZipFile(package.zip_path) as archive:
        return archive.namelist()


def test_the_zip_holds_the_shipped_code_and_nothing_else_of_the_repository(package):
    names = zip_names(package)
    with zipfile.ZipFile(package.zip_path) as archive:
        for source in [ROOT / "index.py", *sorted((ROOT / "handlers").rglob("*.py"))]:
            name = source.relative_to(ROOT).as_posix()
            assert archive.read(name) == source.read_bytes(), f"{name} differs from the repository's"
    assert not [n for n in names if n.split("/")[0] in NEVER_SHIPPED]
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")) or n.startswith("bin/")]
    # Every other top-level entry belongs to a vendored distribution (its RECORD lists it).
    recorded = set()
    with zipfile.ZipFile(package.zip_path) as archive:
        for name in names:
            if name.endswith(".dist-info/RECORD"):
                recorded |= {row.split(",")[0].split("/")[0] for row in archive.read(name).decode().splitlines() if row}
    strays = {n.split("/")[0] for n in names} - recorded - set(SHIPPED)
    assert not strays, f"entries no vendored distribution records: {sorted(strays)}"


def test_the_vendored_versions_are_the_pinned_ones(package):
    pins = read_lock(LOCK)
    vendored = {}
    with zipfile.ZipFile(package.zip_path) as archive:
        for name in archive.namelist():
            if name.endswith(".dist-info/METADATA"):
                fields = dict(line.split(": ", 1) for line in archive.read(name).decode().split("\n\n")[0].splitlines()
                              if ": " in line and not line.startswith(" "))
                vendored[canonical(fields["Name"])] = fields["Version"]
    assert vendored == pins
    assert "crcmod" in vendored and vendored["cos-python-sdk-v5"] == pins["cos-python-sdk-v5"]  # not 1.8.3


def test_the_lock_agrees_with_requirements_txt():
    pins, direct = read_lock(LOCK), read_lock(ROOT / "requirements.txt")
    assert {name: pins.get(name) for name in direct} == direct


def test_every_compiled_module_loads_on_cpython_310(package):
    extensions = [n.rsplit("/", 1)[-1] for n in zip_names(package) if n.endswith(".so")]
    assert extensions, "pycryptodome and charset-normalizer ship compiled modules"
    assert all(n.endswith((".abi3.so", ".cpython-310-x86_64-linux-gnu.so")) for n in extensions), extensions
    assert not [n for n in zip_names(package) if "_crcfunext" in n]  # crcmod's pure-Python version only


def test_the_zip_is_small(package, record_property):
    record_property("zip_bytes", package.zip_bytes)
    assert package.zip_bytes <= MAX_ZIP_BYTES
    with zipfile.ZipFile(package.zip_path) as archive:  # and it is a sound archive SCF can unpack
        assert archive.testzip() is None


def test_a_python_310_interpreter_is_here():
    if find_python310() is None:
        pytest.skip("no CPython 3.10 on this machine: the package ran under this Python instead")


def test_the_unpacked_package_runs_a_sample_event_in_a_bare_interpreter(package, emulator, tmp_path):
    python = find_python310()
    if python is None:
        warnings.warn(f"no CPython 3.10 here: running the package under {sys.version.split()[0]} instead",
                      stacklevel=1)
        python = sys.executable
    tree = tmp_path / "code"
    with zipfile.ZipFile(package.zip_path) as archive:
        archive.extractall(tree)
    objects = {e["key"]: sample_bytes(e) for e in manifest() if e["key"] in ("output/audio.mp3", "output/backgroud.mp3")}
    for key, data in objects.items():
        emulator.put_object(BUCKET, key, data)
    event = http_event(restamp(http_body(json.loads(SAMPLE.read_text())).decode()))

    run = subprocess.run([python, "-I", "-S", "-c", RUN_IN_PACKAGE, str(tree)], input=json.dumps(event), cwd=tree,
                         env=function_env(emulator, LOG_LEVEL="WARNING"), capture_output=True, text=True, timeout=120,
                         check=False)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    report = json.loads(lines[-1][len("RESULT "):])
    if python != sys.executable:
        assert report["version"] == [3, 10]
    assert report["outside"] == [], "modules imported from outside the package and the standard library"
    assert report["crcExtension"] is False and report["crc64"] == CRC64_XZ_CHECK
    result = report["result"]
    assert result["statusCode"] == 200, result["body"]
    (job,) = json.loads(result["body"])["jobs"]
    assert job["outcome"] == "verified"
    assert {o["key"]: o["verdict"] for o in job["objects"]} == {key: "verified" for key in objects}
    assert all(emulator.tags(BUCKET, key)["ci-verify"] == "verified" for key in objects)


REPORT_IN_PACKAGE = "import sys; sys.path.insert(0, sys.argv[1]); from handlers.summary import main; " \
                    "sys.exit(main(sys.argv[2:]))"


def test_the_unpacked_package_runs_the_verification_report_in_a_bare_interpreter(package, emulator, make_app,
                                                                                   tmp_path):
    """The report command ships in the package and needs nothing else (issue 12, item 3)."""
    from tests.conftest import invoke, md5
    from tests.samples import BUCKET, REGION, job_xml

    emulator.put_object(BUCKET, "out/r.mp3", b"r" * 100)
    status, _, _ = invoke(make_app(REPORT_PREFIX="ci-reports/"),
                          http_event(job_xml({"out/r.mp3": md5(b"r" * 100)}, ["out/r.mp3"])))
    assert status == 200
    python = find_python310() or sys.executable
    tree = tmp_path / "code"
    with zipfile.ZipFile(package.zip_path) as archive:
        archive.extractall(tree)
    run = subprocess.run([python, "-I", "-S", "-c", REPORT_IN_PACKAGE, str(tree), "--bucket", BUCKET, "--region",
                          REGION, "--format", "json"], cwd=tree, env={**function_env(emulator),
                                                                     "REPORT_PREFIX": "ci-reports/"},
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    summary = json.loads(run.stdout)
    assert summary["jobs"] == {"verified": 1} and summary["objects"] == {"verified": 1}
