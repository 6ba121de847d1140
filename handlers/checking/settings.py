"""How objects are checked: VERIFY_MODE, the content-hashing speed and the ranged reads it plans
with, and (VERIFY_MODE=server) CI's FileHashCode jobs: their callback URL, queue and budget."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from handlers.config import ConfigError, Reader, value


def read(reader: Reader) -> dict[str, Any]:
    return {
        "verify_mode": reader.choice("VERIFY_MODE", ("auto", "full", "server"), "auto"),
        "hash_callback_url": reader.read(lambda: hash_callback_url(reader.env, "HASH_CALLBACK_URL"), ""),
        "hash_queue_id": reader.value("HASH_QUEUE_ID"),
        "hash_jobs_per_version": reader.integer("HASH_JOBS_PER_VERSION", 2, 1, 10),
        "hash_mib_per_second": reader.integer("HASH_MIB_PER_SECOND", 20, 1, 100_000),
        "parallel_read_bytes": reader.integer("PARALLEL_READ_MIN_MB", 32, 1, 5 << 20) << 20,
        "read_part_bytes": reader.integer("READ_PART_MB", 8, 1, 256) << 20,
        "read_connections": reader.integer("READ_CONNECTIONS", 4, 1, 32),
    }


def hash_callback_url(env: Mapping[str, str], name: str) -> str:
    found = value(env, name)
    if found and not re.fullmatch(r"https?://[^\s/]+\S*", found):
        raise ConfigError(name, f"must be an http(s) URL (this function's Function URL, with ?token=...), "
                                f"not {found!r}")
    return found
