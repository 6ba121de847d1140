"""One content verification of a big object, in a fresh process, reporting its time and the
process's peak memory growth: `python -m bench.stream_probe ours|naive ENDPOINT KEY MD5 WARM_KEY WARM_MD5 [ENV]`
(ENV: a JSON object of settings for `ours`, e.g. {"READ_CONNECTIONS": "1"}).

A fresh process, so that nothing the benchmark allocated before can hide the peak. A warm-up
on a small multipart object first loads every module and opens the connections; the peak is
then reset (/proc/self/clear_refs) so that only the measured invocation sets it.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.workload import (
    CONTEXT,
    REGION,
    SECRET_ID,
    SECRET_KEY,
    TOKEN,
    callback_xml,
    function_env,
    http_event,
    quiet_stdout,
    response_body,
)


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


def ours(endpoint: str, env: dict[str, str]):
    from handlers.app import App
    from handlers.settings import Settings

    app = App(Settings.from_env(function_env(endpoint, **env)))

    def verify(key: str, md5: str) -> list[tuple[str, str]]:
        with quiet_stdout():
            result = app.handle(http_event(callback_xml({key: md5})), CONTEXT)
        return [(o["verdict"], o["method"]) for job in response_body(result)["jobs"] for o in job["objects"]]
    return verify


def naive(endpoint: str, env: dict[str, str]):
    from bench.naive import NaiveVerifier

    verifier = NaiveVerifier(endpoint, SECRET_ID, SECRET_KEY, TOKEN, REGION)
    return lambda key, md5: [(verdict, "content") for verdict in verifier.handle(callback_xml({key: md5}))]


def main(argv: list[str]) -> int:
    implementation, endpoint, key, md5, warm_key, warm_md5 = argv[:6]
    env = json.loads(argv[6]) if len(argv) > 6 else {}
    verify = {"ours": ours, "naive": naive}[implementation](endpoint, env)
    verify(warm_key, warm_md5)
    reset_peak()
    before = memory_kib("VmRSS")
    started = time.perf_counter()
    found = verify(key, md5)
    seconds = time.perf_counter() - started
    peak = memory_kib("VmHWM")
    if found != [("verified", "content")]:
        raise SystemExit(f"expected the object verified by its content, got {found}")
    print(json.dumps({"seconds": seconds, "rssBeforeKiB": before, "peakKiB": peak,
                      "growthKiB": max(0, peak - before)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
