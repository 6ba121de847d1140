"""A `Summary` written for people (a table), programs (JSON) or spreadsheets (CSV, every cell safe to open)."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from typing import Any

from handlers.operations.report_command.summarise import Row, Summary

FORMATS = ("table", "json", "csv")
_FORMULA_SIGNS = ("=", "+", "-", "@")
_FORMULA_FIRST = (*_FORMULA_SIGNS, "\t", "\r", "\n", "\0")


def render(summary: Summary, form: str) -> str:
    if form == "json":
        return json.dumps(as_dict(summary), ensure_ascii=False, indent=2) + "\n"
    if form == "csv":
        return _csv(summary)
    return _table(summary)


def as_dict(summary: Summary) -> dict[str, Any]:
    """The JSON form: keys exactly as CI named them (JSON is for programs, no spreadsheet quoting)."""
    return {"bucket": summary.bucket, "source": summary.source, "jobs": dict(sorted(summary.jobs.items())),
            "objects": dict(sorted(summary.objects.items())),
            "problems": [_row_dict(row) for row in summary.problems],
            "unreadable": [{"key": u.key, "reason": u.reason} for u in summary.unreadable]}


def _csv(summary: Summary) -> str:
    out = io.StringIO()
    # RFC 4180's CRLF: the writer then quotes any cell holding a CR or LF (with "\n" it left a
    # bare CR unquoted, and a spreadsheet started a new row there, whose first cell could be a formula).
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["jobId", "outcome", "bucket", "key", "verdict", "reason"])
    skipped = [Row("", "unreadable", summary.bucket, u.key, "", u.reason) for u in summary.unreadable]
    for row in summary.rows + [p for p in summary.problems if not p.key] + skipped:
        writer.writerow([spreadsheet_text(cell) for cell in
                         (row.job_id, row.outcome, row.bucket, row.key, row.verdict, row.reason)])
    return out.getvalue()


def _table(summary: Summary) -> str:
    lines = [f"{summary.bucket}: {sum(summary.jobs.values())} jobs, {sum(summary.objects.values())} objects "
             f"(from the {'audit reports' if summary.source == 'reports' else 'objects’ tags'})", ""]
    lines += [*_counts("jobs by outcome", summary.jobs), "", *_counts("objects by verdict", summary.objects)]
    lines += ["", f"problems: {len(summary.problems)}" if summary.problems else "problems: none"]
    for row in summary.problems:
        where = f"{row.key} " if row.key else ""
        lines.append(f"  {row.verdict or row.outcome:<12} {row.job_id} {where}{row.reason}".rstrip())
    if summary.unreadable:
        lines += ["", f"unreadable reports: {len(summary.unreadable)} (skipped, not counted above)"]
        lines += [f"  {u.key}: {u.reason}" for u in summary.unreadable]
    return "\n".join(lines) + "\n"


def spreadsheet_text(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: keys, CI's Code and Message can be anything, and a
    cell that begins with = + - @, a tab or a CR is run as a formula (=HYPERLINK(...) is a live link).
    OWASP's advice (https://owasp.org/www-community/attacks/CSV_Injection): a single quote before it,
    which Excel, LibreOffice and Google Sheets take as "text" and do not show. Also quoted: LF and
    NUL first (ASVS 1.2.10 names NUL; an LF starts a line as a CR does), and blanks before one of
    = + - @, since importers that trim leading blanks (LibreOffice's option, Google Sheets) would
    then see a formula; the quote costs an apostrophe on a rare key, a missed formula costs more."""
    if cell[:1] in _FORMULA_FIRST or cell.lstrip()[:1] in _FORMULA_SIGNS:
        return "'" + cell
    return cell


def _counts(title: str, counts: Counter[str]) -> list[str]:
    return [f"{title}:"] + ([f"  {name:<14}{n:>8}" for name, n in sorted(counts.items())] or ["  (none)"])


def _row_dict(row: Row) -> dict[str, str]:
    return {"jobId": row.job_id, "outcome": row.outcome, "bucket": row.bucket, "key": row.key,
            "verdict": row.verdict, "reason": row.reason}
