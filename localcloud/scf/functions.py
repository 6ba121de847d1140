"""Registered functions: what `Invoke` can reach, and the `context` SCF hands a Python handler."""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

Handler = Callable[[Any, dict], Any]

LATEST = "$LATEST"
DEFAULT_ALIAS = "$DEFAULT"  # SCF's default alias; it points at $LATEST until a version is published
DEFAULT_NAMESPACE = "default"

# SCF: 2-60 characters, letters, digits, '-' and '_', starting with a letter, ending with a letter or digit.
_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]")


def check_function_name(name: str) -> None:
    if not _FUNCTION_NAME.fullmatch(name):
        raise ApiError("InvalidParameter.FunctionName",
                       f"FunctionName `{name}` is invalid: 2-60 letters, digits, '-' or '_', "
                       "starting with a letter and ending with a letter or digit.")


@dataclass(frozen=True)
class Function:
    name: str
    handler: Handler = field(repr=False)
    namespace: str = DEFAULT_NAMESPACE
    qualifier: str = LATEST
    retries: int = 2  # SCF retries a failed asynchronous invocation twice
    retry_delay: float = 0.05  # seconds between attempts; SCF waits longer, tests should not
    memory_mb: int = 256
    timeout: float = 60.0  # seconds; an attempt that runs longer counts as failed
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_function_name(self.name)
        if self.retries < 0 or self.retry_delay < 0 or self.timeout <= 0 or self.memory_mb <= 0:
            raise ValueError("retries and retry_delay must be >= 0, timeout and memory_mb > 0")

    def context(self, request_id: str, region: str) -> dict:
        return {
            "request_id": request_id,
            "function_name": self.name,
            "function_version": self.qualifier,
            "namespace": self.namespace,
            "memory_limit_in_mb": self.memory_mb,
            "time_limit_in_ms": int(self.timeout * 1000),
            "environ": ";".join(f"{key}={value}" for key, value in self.environment.items()),
            "tencentcloud_region": region,
        }


class FunctionRegistry:
    def __init__(self, region: str):
        self.region = region
        self._functions: dict[tuple[str, str, str], Function] = {}
        self._lock = threading.Lock()

    def register(self, function: Function) -> None:
        with self._lock:
            self._functions[(function.namespace, function.name, function.qualifier)] = function

    def find(self, name: str, namespace: str, qualifier: str, region: str) -> Function:
        with self._lock:
            function = self._functions.get((namespace, name, qualifier))
            if function is None and qualifier == DEFAULT_ALIAS:
                function = self._functions.get((namespace, name, LATEST))
            known_name = any(key[:2] == (namespace, name) for key in self._functions)
        if region != self.region:
            raise ApiError("ResourceNotFound.Function",
                           f"Function `{name}` does not exist in region {region} "
                           f"(this emulator serves {self.region}).")
        if function is not None:
            return function
        if known_name:
            raise ApiError("ResourceNotFound.Qualifier",
                           f"Function `{name}` in namespace `{namespace}` has no version or alias `{qualifier}`.")
        raise ApiError("ResourceNotFound.Function", f"Function `{name}` does not exist in namespace `{namespace}`.")
