"""Whether a callback's claim is confirmed by reading the job back from CI (VERIFY_WITH_CI)."""
from __future__ import annotations

from typing import Any

from handlers.config import Reader


def read(reader: Reader) -> dict[str, Any]:
    return {"verify_with_ci": reader.flag("VERIFY_WITH_CI", True)}
