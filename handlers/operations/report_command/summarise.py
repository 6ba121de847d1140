"""The pure part of the report command: what an audit report is, and how reports or tags are counted.

Nothing here reads COS or prints; `listing.collect` feeds these functions, `render` writes their `Summary`.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from handlers.storage.tags import JOB_TAG, VERIFY_TAG

FAILING_VERDICTS = ("mismatch", "missing")  # what makes the exit status 1
FINE_VERDICTS = ("verified", "superseded")  # never listed as problems
MAX_REPORT_BYTES = 16 * 1024 * 1024  # a job's report is kilobytes; a bigger object is none of ours
# The function's own records under REPORT_PREFIX (else STATE_PREFIX): neither audit reports nor strays.
OWN_FOLDERS = ("notified/",  # what was notified (handlers/operations/notifications/record.py)
               "hash-jobs/",  # the FileHashCode ledger (handlers/checking/hashledger.py)
               "settled/",  # the sweep's settled markers (handlers/operations/settled.py)
               "sweep/", "backfill/")  # the sweep's checkpoints and leases (handlers/reconcile/checkpoint.py)
REPORT_SUFFIX = ".json"  # an audit report is `<prefix><JobId>.json` (handlers/operations/audit.py)
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Row:
    """One object as the summary counts it."""

    job_id: str
    outcome: str
    bucket: str
    key: str
    verdict: str
    reason: str = ""


@dataclass(frozen=True)
class Unreadable:
    """An object under the reports prefix that is no audit report, and why."""

    key: str
    reason: str


class UnreadableReport(ValueError):
    pass


@dataclass
class Summary:
    bucket: str
    source: str  # "reports" | "tags"
    jobs: Counter[str] = field(default_factory=Counter)  # by outcome
    objects: Counter[str] = field(default_factory=Counter)  # by verdict
    rows: list[Row] = field(default_factory=list)
    problems: list[Row] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)  # skipped reports, never counted above

    @property
    def failing(self) -> bool:
        return any(self.objects[verdict] for verdict in FAILING_VERDICTS)


def parse_report(body: bytes) -> dict[str, Any]:
    """An audit report as handlers/operations/audit.py writes it, or UnreadableReport saying why it is not one:
    anyone can put an object under the prefix, and one stray object must not end the command."""
    if len(body) > MAX_REPORT_BYTES:
        raise UnreadableReport(f"larger than {MAX_REPORT_BYTES // 2**20} MiB, which no audit report is")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UnreadableReport(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnreadableReport(f"not a JSON object: a JSON {type(data).__name__}")
    missing = [name for name in ("jobId", "outcome") if not isinstance(data.get(name), str) or not data[name]]
    if missing:
        raise UnreadableReport(f"no {' and no '.join(missing)}")
    objects = data.get("objects")
    if not isinstance(objects, list) or not all(
            isinstance(o, dict) and isinstance(o.get("key"), str) and isinstance(o.get("verdict"), str)
            for o in objects):
        raise UnreadableReport(f"objects is not a list of objects with a key and a verdict: {str(objects)[:80]}")
    return data


def summarise_reports(bucket: str, reports: Iterable[Mapping[str, Any]], prefix: str = "") -> Summary:
    """Audit reports (handlers/operations/audit.py: one job entry each) counted; objects outside `prefix` left out."""
    summary = Summary(bucket, "reports")
    for report in reports:
        job_id, outcome = str(report.get("jobId") or "?"), str(report.get("outcome") or "?")
        objects = [o for o in report.get("objects") or [] if str(o.get("key", "")).startswith(prefix)]
        if prefix and not objects:
            continue
        summary.jobs[outcome] += 1
        if outcome == "failed-job":
            reason = "; ".join(str(report[k]) for k in ("code", "message") if report.get(k))
            summary.problems.append(Row(job_id, outcome, bucket, "", "", reason or "CI reports the job as failed"))
        for obj in objects:
            row = Row(job_id, outcome, str(obj.get("bucket") or bucket), str(obj.get("key") or ""),
                      str(obj.get("verdict") or "?"), str(obj.get("reason") or ""))
            _count(summary, row)
    return summary


def summarise_tags(bucket: str, tagged: Iterable[tuple[str, Mapping[str, str]]]) -> Summary:
    """Objects' tags counted: a job's outcome is `failed` when one of its objects mismatched,
    `verified` when all were verified, else `unverified`. Untagged objects count as `untagged`.
    Tags cannot show a missing output (it has no object): the audit reports can."""
    summary = Summary(bucket, "tags")
    by_job: dict[str, list[str]] = {}
    rows = []
    for key, tags in tagged:
        verdict = tags.get(VERIFY_TAG) or "untagged"
        job_id = tags.get(JOB_TAG, "")
        rows.append((job_id, key, verdict))
        if job_id:
            by_job.setdefault(job_id, []).append(verdict)
    outcomes = {job: _outcome_of(verdicts) for job, verdicts in by_job.items()}
    summary.jobs.update(outcomes.values())
    for job_id, key, verdict in rows:
        reason = "" if verdict in (*FINE_VERDICTS, "untagged") else f"tagged {VERIFY_TAG}={verdict}"
        _count(summary, Row(job_id, outcomes.get(job_id, ""), bucket, key, verdict, reason))
    return summary


def _outcome_of(verdicts: list[str]) -> str:
    if "mismatch" in verdicts:
        return "failed"
    return "verified" if all(v == "verified" for v in verdicts) else "unverified"


def _count(summary: Summary, row: Row) -> None:
    summary.objects[row.verdict] += 1
    summary.rows.append(row)
    if row.verdict not in FINE_VERDICTS and row.verdict != "untagged":
        summary.problems.append(row)


def own_record(key: str, reports_prefix: str) -> bool:
    """Whether `key`, under the reports prefix, is one of the function's own records (or a console folder)."""
    rest = key[len(reports_prefix):]
    return not rest or rest.endswith("/") or rest.startswith(OWN_FOLDERS)


def since_cutoff(text: str, now: datetime) -> datetime:
    """`24h`, `30m`, `7d`, `2w` back from now, or an ISO date/time (UTC when it names no zone)."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    moment = _moment(text.strip())
    if moment is None:
        raise ValueError(f"--since {text!r}: use a duration like 24h, 30m, 7d, or a date like 2026-11-23")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _moment(text: str) -> datetime | None:
    """An ISO date/time, CI's `+0800` offsets and a `Z` included: Python 3.10's fromisoformat (SCF's
    runtime) reads neither, and the backfill hands its period on in CI's form."""
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
