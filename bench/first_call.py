"""A container's first moments, in a fresh process: `python -m bench.first_call ENDPOINT MD5S_JSON`.

Prints the seconds taken by `import index`, by the first invocation after it, and by the
next one (warm: the same work, a different job, so the tags are written again).
"""
from __future__ import annotations

import json
import os
import sys
import time

from bench.workload import CONTEXT, callback_xml, function_env, http_event, quiet_stdout, verdicts


def main(argv: list[str]) -> int:
    endpoint, md5s = argv[0], json.loads(argv[1])
    os.environ.update(function_env(endpoint))
    started = time.perf_counter()
    import index
    imported = time.perf_counter()
    timings = []
    for job in ("j" + "0" * 30 + "10", "j" + "0" * 30 + "11"):
        body = callback_xml(md5s, job_id=job)
        begun = time.perf_counter()
        with quiet_stdout():
            found = verdicts(index.main_handler(http_event(body), CONTEXT))
        timings.append(time.perf_counter() - begun)
        if found != ["verified"] * len(md5s):
            raise SystemExit(f"expected every object verified, got {found}")
    print(json.dumps({"import": imported - started, "first": timings[0], "warm": timings[1]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
