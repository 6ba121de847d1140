"""The deploy package's size: built as `python3 dev.py package` builds it (localcloud/package.py:
manylinux2014 x86_64 wheels for CPython 3.10, vendored), into a temporary directory."""
from __future__ import annotations

from pathlib import Path

from bench.figures import Figure
from localcloud import package

MB = 1_000_000
LIMIT_BYTES = 10 * MB  # decimal megabytes: a little under package.MAX_ZIP_BYTES (10 MiB), which the build enforces


def measure(work: Path) -> tuple[list[Figure], Path | None]:
    """The figure, and the unpacked tree (None when the build failed: no index to install from)."""
    try:
        built = package.build(build_dir=work / "tree", zip_path=work / "ci-callback-verifier.zip", log=lambda *_: None)
    except Exception as exc:  # offline, or an index without the pinned wheels: say so in the figure
        return [Figure("deploy package (zip)", None, "MB", "limit", LIMIT_BYTES / MB, "<= 1",
                       note=f"not built: {str(exc).splitlines()[0][:200]}")], None
    note = (f"{built.zip_bytes / 2**20:.2f} MiB; index.py, handlers/ and {len(built.versions)} pinned distributions "
            f"for CPython {package.PYTHON_VERSION} ({package.PLATFORM})")
    return [Figure("deploy package (zip)", built.zip_bytes / MB, "MB", "limit", LIMIT_BYTES / MB, "<= 1",
                   note=note)], built.tree
