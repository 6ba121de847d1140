"""Build the SCF deploy package: `python3 dev.py package` (or `python -m localcloud.package`).

Writes two things:

- build/package/                  the function's code directory: what serverless.yml deploys
                                  (the framework zips a directory itself);
- dist/ci-callback-verifier.zip   the same tree zipped, for the console's "upload a zip",
                                  `tccli scf UpdateFunctionCode` or a COS upload.

SCF's Python 3.10 runtime (x86_64, glibc as old as manylinux2014's) has nothing installed
but the standard library, so the package holds:

- the shipped code, index.py and handlers/, and nothing else of this repository;
- every runtime distribution pinned in requirements-lock.txt, installed by pip from
  manylinux2014 wheels for CPython 3.10, whatever Python runs this script;
- their *.dist-info folders (a few KB each: the versions stay readable in the zip, and
  importlib.metadata works in the function).

No bytecode is shipped: this machine's Python would compile it for its own version, and SCF
mounts the code read-only, so 3.10 compiles in memory what it imports (measured: no faster
cold start with precompiled 3.10 bytecode either). No console scripts (bin/) either.

crcmod, which cos-python-sdk-v5 needs, publishes no wheel. Its pure-Python wheel is built
here with the C compiler disabled, so an extension compiled for this machine's Python (which
SCF's 3.10 could not import) cannot slip in, and handed to pip with --find-links. Without
it, pip's --only-binary=:all: would quietly settle for cos-python-sdk-v5 1.8.3, the last
release without crcmod: the lock pins 1.9.44, so that mistake fails the build instead.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-lock.txt"
BUILD_DIR = ROOT / "build" / "package"
WHEELHOUSE = ROOT / "build" / "wheels"
ZIP_PATH = ROOT / "dist" / "ci-callback-verifier.zip"

SHIPPED = ("index.py", "handlers")  # the function's own code; everything else stays home
PYTHON_VERSION = "3.10"  # SCF's newest Python runtime
PLATFORM = "manylinux2014_x86_64"
ABI = "cp310"
BUILT_HERE = ("crcmod",)  # sdist-only distributions: their pure-Python wheels are built here
MAX_ZIP_BYTES = 10 * 1024 * 1024  # keep the upload small: cold starts download it
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed times and order: the same inputs give the same bytes
_EXTENSION = re.compile(r"\.(cpython-(?P<tag>\d+)[^.]*|abi3)\.so$")


class BuildError(RuntimeError):
    """The package cannot be built as pinned: the message says what to fix."""


@dataclass(frozen=True)
class Package:
    tree: Path
    zip_path: Path
    zip_bytes: int
    versions: dict[str, str]  # canonical distribution name -> version, read from the tree
    seconds: float


def canonical(name: str) -> str:
    """PEP 503 name: `Charset_Normalizer` and `charset-normalizer` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} from a file of `name==version` lines."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise BuildError(f"{path.name}:{number}: {line!r} is not a `name==version` pin")
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed_versions(tree: Path) -> dict[str, str]:
    """{canonical name: version} of every *.dist-info in a directory, from its METADATA."""
    versions: dict[str, str] = {}
    for info in sorted(tree.glob("*.dist-info")):
        fields = dict(_metadata_fields((info / "METADATA").read_text(encoding="utf-8")))
        versions[canonical(fields["Name"])] = fields["Version"]
    return versions


def _metadata_fields(text: str):
    for line in text.splitlines():
        if not line.strip():
            return  # the headers end at the first blank line; the long description follows
        name, _, value = line.partition(":")
        yield name.strip(), value.strip()


def build(build_dir: Path = BUILD_DIR, zip_path: Path = ZIP_PATH, wheelhouse: Path = WHEELHOUSE,
          lock: Path = LOCK, log=print) -> Package:
    started = time.monotonic()
    pins = read_lock(lock)
    missing_here = [name for name in BUILT_HERE if name not in pins]
    if missing_here:
        raise BuildError(f"{lock.name} must pin {', '.join(missing_here)}")
    for name in BUILT_HERE:
        _pure_wheel(name, pins[name], wheelhouse, log)
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    log(f"installing {len(pins)} pinned distributions for CPython {PYTHON_VERSION} on {PLATFORM}")
    _pip("install", "--target", str(build_dir), "--platform", PLATFORM, "--python-version", PYTHON_VERSION,
         "--implementation", "cp", "--abi", ABI, "--only-binary=:all:", "--find-links", str(wheelhouse),
         "--no-compile", "--requirement", str(lock))
    versions = installed_versions(build_dir)
    _check_versions(versions, pins, lock.name)
    _prune(build_dir)
    _check_extensions(build_dir)
    _copy_shipped(build_dir)
    zip_bytes = write_zip(build_dir, zip_path)
    if zip_bytes > MAX_ZIP_BYTES:
        raise BuildError(f"{zip_path.name} is {zip_bytes / 2**20:.1f} MiB, over {MAX_ZIP_BYTES / 2**20:.0f} MiB")
    return Package(build_dir, zip_path, zip_bytes, versions, time.monotonic() - started)


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"pip {args[0]} failed ({' '.join(command)}):\n{result.stdout.strip()}")


def _pure_wheel(name: str, version: str, wheelhouse: Path, log) -> Path:
    """The pure-Python wheel of an sdist-only distribution, built once into the wheelhouse."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    found = _wheels(wheelhouse, name, version)
    if found:
        return found[0]
    log(f"building the pure-Python wheel of {name}=={version} (it publishes none)")
    with tempfile.TemporaryDirectory() as scratch:
        # CC=false makes the extension's compilation fail: crcmod's setup.py then builds its
        # pure-Python version. No cache: a wheel cached with the extension must not be reused.
        _pip("wheel", "--no-deps", "--no-cache-dir", "--no-binary", ":all:", f"{name}=={version}",
             "--wheel-dir", scratch, env={**os.environ, "CC": "false", "CXX": "false"})
        built = _wheels(Path(scratch), name, version)
        if not built:
            names = ", ".join(p.name for p in Path(scratch).iterdir()) or "nothing"
            raise BuildError(f"building {name}=={version} gave {names}, not a pure-Python (none-any) wheel")
        return Path(shutil.copy2(built[0], wheelhouse))


def _wheels(directory: Path, name: str, version: str) -> list[Path]:
    prefix = f"{canonical(name).replace('-', '_')}-{version}-"
    return sorted(p for p in directory.glob("*.whl")
                  if p.name.lower().startswith(prefix) and p.name.endswith("-none-any.whl"))


def _check_versions(versions: dict[str, str], pins: dict[str, str], lock_name: str) -> None:
    problems = [f"{name} {version} is not pinned" for name, version in versions.items() if name not in pins]
    problems += [f"{name} is pinned but was not installed" for name in pins if name not in versions]
    problems += [f"{name} {versions[name]} was installed, {pins[name]} is pinned"
                 for name in pins if name in versions and versions[name] != pins[name]]
    if problems:
        raise BuildError(f"the vendored distributions differ from {lock_name}: " + "; ".join(problems))


def _prune(tree: Path) -> None:
    """Drop what pip leaves that the function never uses: console scripts, bytecode."""
    shutil.rmtree(tree / "bin", ignore_errors=True)
    for cache in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for stray in tree.rglob("*.py[co]"):
        stray.unlink()


def _check_extensions(tree: Path) -> None:
    """Every compiled module must load on CPython 3.10: cpython-310 or the stable ABI (abi3)."""
    wrong = []
    for path in tree.rglob("*.so"):
        match = _EXTENSION.search(path.name)
        if match is None or (match.group("tag") and match.group("tag") != ABI[2:]):
            wrong.append(str(path.relative_to(tree)))
    if wrong:
        raise BuildError(f"extension modules SCF's Python {PYTHON_VERSION} cannot import: {', '.join(sorted(wrong))}")


def _copy_shipped(tree: Path) -> None:
    for name in SHIPPED:
        source, target = ROOT / name, tree / name
        if target.exists():
            raise BuildError(f"a vendored distribution installs {name!r}, which the function's own code needs")
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
        else:
            shutil.copy2(source, target)


def write_zip(tree: Path, zip_path: Path) -> int:
    """Zip a directory reproducibly: sorted entries, fixed times, 0644 files and 0755 folders."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(tree.rglob("*"), key=lambda p: p.relative_to(tree).as_posix()):
            name = path.relative_to(tree).as_posix()
            if path.is_dir():
                entry = zipfile.ZipInfo(name + "/", ZIP_TIME)
                entry.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(entry, b"")
            else:
                entry = zipfile.ZipInfo(name, ZIP_TIME)
                entry.external_attr = 0o100644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, path.read_bytes(), compresslevel=9)
    partial.replace(zip_path)
    return zip_path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, default=ZIP_PATH, help=f"the zip to write (default: {ZIP_PATH.relative_to(ROOT)})")
    parser.add_argument("--tree", type=Path, default=BUILD_DIR,
                        help=f"the unpacked package, rebuilt from scratch (default: {BUILD_DIR.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    try:
        package = build(build_dir=args.tree.resolve(), zip_path=args.zip.resolve())
    except BuildError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    shown = ", ".join(f"{name} {version}" for name, version in sorted(package.versions.items()))
    print(f"vendored: {shown}")
    print(f"wrote {_shown(package.zip_path)} ({package.zip_bytes / 2**20:.2f} MiB) and {_shown(package.tree)}/ "
          f"in {package.seconds:.1f} s")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
