"""Run event files through `index.main_handler` the way SCF would, and show the answer."""
from __future__ import annotations

import importlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def local_context(timeout_seconds: int = 30) -> dict[str, Any]:
    """A context shaped like SCF's Python one (a dict; no remaining-time method)."""
    return {
        "request_id": str(uuid.uuid4()),
        "function_name": "ci-callback-verifier",
        "function_version": "$LATEST",
        "namespace": "default",
        "memory_limit_in_mb": 256,
        "time_limit_in_ms": timeout_seconds * 1000,
        "environ": "SCF_NAMESPACE=default;SCF_FUNCTIONNAME=ci-callback-verifier",
    }


def load_handler():
    """Import index as SCF does at cold start (settings are read from the environment then)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.modules.pop("index", None)
    return importlib.import_module("index").main_handler


def run_file(path: str) -> int:
    """Run one event file and print what the handler gave back, whatever its kind: an HTTP
    answer (Function URL, API Gateway), the dict a timer, worker or queue invocation returns,
    or the RetryLater a worker or queue invocation raises so that SCF delivers it again."""
    event = json.loads(Path(path).read_text())
    handler = load_handler()
    from handlers.app import RetryLater  # after load_handler: index and handlers come from ROOT
    try:
        result = handler(event, local_context())
    except RetryLater as exc:
        print(f"RetryLater: {exc} (SCF would deliver this event again)")
        return 1
    if isinstance(result, dict) and "statusCode" in result:
        return _print_http(result)
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


def _print_http(result: dict[str, Any]) -> int:
    status = result["statusCode"]
    print(f"HTTP {status}")
    for name, value in (result.get("headers") or {}).items():
        print(f"{name}: {value}")
    print()
    try:
        print(json.dumps(json.loads(result["body"]), indent=2, ensure_ascii=False))
    except (KeyError, TypeError, ValueError):
        print(result.get("body"))
    return 0 if isinstance(status, int) and status < 500 else 1
