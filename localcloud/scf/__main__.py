"""python -m localcloud.scf --host 127.0.0.1 --port N --secret-id ID --secret-key KEY [--function NAME=module:callable]"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..serving import serve_until_signalled
from .emulator import DEFAULT_REGION, ScfEmulator
from .functions import Handler


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcloud.scf", description="Local SCF API (Invoke) emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--secret-id", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--token", default=None, help="require this session token on every request")
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--function", action="append", default=[], metavar="NAME=module:callable",
                        help="register handler(event, context) as NAME in namespace default (repeatable)")
    return parser.parse_args(argv)


def _load_handler(spec: str) -> tuple[str, Handler]:
    name, _, target = spec.partition("=")
    module_name, _, attribute = target.partition(":")
    if not (name and module_name and attribute):
        raise SystemExit(f"--function {spec!r}: expected NAME=module:callable")
    handler = importlib.import_module(module_name)
    for part in attribute.split("."):
        handler = getattr(handler, part)
    if not callable(handler):
        raise SystemExit(f"--function {spec!r}: {target} is not callable")
    return name, handler


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    emulator = ScfEmulator(args.secret_id, args.secret_key, args.token, args.host, args.port, args.region)
    for spec in args.function:
        emulator.register_function(*_load_handler(spec))

    serve_until_signalled(emulator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
