"""The cloud's settings: the credentials every COS and CI client signs with, where the requests
go, how long one may take, how many run at once, and this function's region."""
from __future__ import annotations

from typing import Any

from handlers.config import Reader

MAX_CONCURRENCY = 64


def read(reader: Reader) -> dict[str, Any]:
    return {
        "secret_id": reader.required("TENCENTCLOUD_SECRETID"),
        "secret_key": reader.required("TENCENTCLOUD_SECRETKEY"),
        "token": reader.value("TENCENTCLOUD_SESSIONTOKEN") or None,
        "cos_endpoint": reader.endpoint("COS_ENDPOINT"),
        "concurrency": reader.integer("CONCURRENCY", 16, 1, MAX_CONCURRENCY),
        "cos_timeout": float(reader.integer("COS_TIMEOUT_SECONDS", 10, 1, 300)),
        "region": reader.region(),
    }
