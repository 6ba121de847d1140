"""Cold start: what `import index` costs beyond the SDK modules the HTTP path cannot do without,
and how long the first invocation after it takes.

Import times come from `python -X importtime` in fresh processes (the sum of every module's
own time), the function's and the SDK's runs interleaved, the median of each.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.figures import Figure
from bench.remote import RemoteEmulator
from bench.workload import BUCKET, REGION, ROOT, SECRET_ID, SECRET_KEY, TOKEN, function_env, object_body, output_keys

SDK_MODULES = "import qcloud_cos, xmltodict, requests"
SDK_BASELINE = "the SDK modules alone (qcloud_cos, xmltodict, requests)"


def import_seconds(statement: str, env: dict[str, str], cwd: Path, flags: tuple[str, ...] = ()) -> float:
    done = subprocess.run([sys.executable, *flags, "-X", "importtime", "-c", statement], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{done.stderr[-2000:]}")
    own = [line.split("|")[0].split(":")[1] for line in done.stderr.splitlines()
           if line.startswith("import time:") and "self [us]" not in line]
    return sum(int(us) for us in own) / 1e6


def import_figure(name: str, runs: int, env: dict[str, str], cwd: Path, flags: tuple[str, ...] = (),
                  prelude: str = "", note: str = "") -> Figure:
    ours, sdk = [], []
    for _ in range(runs):
        ours.append(import_seconds(prelude + "import index", env, cwd, flags))
        sdk.append(import_seconds(prelude + SDK_MODULES, env, cwd, flags))
    return Figure(name, statistics.median(ours) * 1000, "ms", SDK_BASELINE, statistics.median(sdk) * 1000, "<= 1.2",
                  note=note or f"median of {runs} fresh processes")


def first_call(runs: int) -> dict[str, float]:
    with RemoteEmulator(SECRET_ID, SECRET_KEY, TOKEN) as emulator:
        emulator.create_bucket(BUCKET, REGION)
        md5s = {key: emulator.put_object(BUCKET, key, object_body(i)) for i, key in enumerate(output_keys(2))}
        samples = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-m", "bench.first_call", emulator.endpoint, json.dumps(md5s)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"bench.first_call failed:\n{done.stdout}\n{done.stderr}")
            samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(s[name] for s in samples) for name in ("import", "first", "warm")}


def measure(runs: int, package_tree: Path | None) -> list[Figure]:
    env = {**function_env("http://127.0.0.1:9"), "PATH": os.environ.get("PATH", "")}
    figures = [import_figure("cold-start import", runs, env, ROOT)]
    deployed = "cold-start import, as deployed (no bytecode)"
    if package_tree is None:
        figures.append(Figure(deployed, None, "ms", SDK_BASELINE, None, "<= 1.2",
                              note="no deploy package to import from (its build failed)"))
    else:
        # As SCF runs it: the package's own copies, nothing else on the path, and no bytecode
        # (none is shipped, and the code directory is read-only): every module compiles.
        prelude = f"import sys; sys.path.insert(0, {str(package_tree.resolve())!r}); "
        figures.append(import_figure(deployed, runs, env, package_tree, ("-I", "-B"), prelude,
                                     note=f"the deploy package's tree, compiled on import; median of {runs}"))
    timings = first_call(runs)
    figures.append(Figure("first invocation after import, 2 outputs", timings["first"] * 1000, "ms",
                          "the next (warm) invocation", timings["warm"] * 1000,
                          note=f"no added delay; `import index` took {timings['import'] * 1000:.0f} ms before it"))
    return figures
