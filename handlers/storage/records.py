"""Where the function keeps its own records in COS (audit reports, markers, ledgers, checkpoints): under
REPORT_PREFIX, or STATE_PREFIX without one."""
from __future__ import annotations

STATE_PREFIX = ".ci-callback-verifier/"  # the function's own records (notification markers) without REPORT_PREFIX


def state_prefix(report_prefix: str) -> str:
    """Where the function keeps its own records: REPORT_PREFIX when set (as notification markers do)."""
    return report_prefix or STATE_PREFIX
