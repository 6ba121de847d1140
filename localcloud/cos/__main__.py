"""python -m localcloud.cos --host 127.0.0.1 --port N --secret-id ID --secret-key KEY [...]: serve until stopped."""
from __future__ import annotations

import argparse
import sys

from ..serving import serve_until_signalled
from .emulator import DEFAULT_REGION, CosEmulator


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcloud.cos", description="Local COS + CI emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--secret-id", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--token", default=None, help="require this session token on every request")
    parser.add_argument("--root", default=None, help="directory for object files (default: a temporary one)")
    parser.add_argument("--jobs", action="append", default=[], help="JSON file of CI jobs to serve (repeatable)")
    parser.add_argument("--bucket", action="append", default=[], metavar="NAME[:REGION]",
                        help=f"create a bucket (region defaults to {DEFAULT_REGION}; repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    emulator = CosEmulator(args.secret_id, args.secret_key, args.token, args.root, args.host, args.port)
    for spec in args.bucket:
        name, _, region = spec.partition(":")
        emulator.create_bucket(name, region or DEFAULT_REGION)
    for path in args.jobs:
        emulator.load_jobs(path)

    serve_until_signalled(emulator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
