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
    event = json.loads(Path(path).read_text())
    result = load_handler()(event, local_context())
    print(f"HTTP {result['statusCode']}")
    for name, value in result.get("headers", {}).items():
        print(f"{name}: {value}")
    print()
    try:
        print(json.dumps(json.loads(result["body"]), indent=2, ensure_ascii=False))
    except (KeyError, ValueError):
        print(result.get("body"))
    return 0 if result["statusCode"] < 500 else 1
