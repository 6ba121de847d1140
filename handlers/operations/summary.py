"""What the function decided, summarised from COS: `python -m handlers.summary --bucket B`.

Reads the audit reports under REPORT_PREFIX (env or --reports-prefix) or, without reports,
the `ci-verify`/`ci-job` tags of the objects under --prefix, and prints jobs by outcome,
objects by verdict and every problem with its reason, as a table, JSON or CSV. Exits 1 when
it finds a mismatch or a missing output (a cron job or a CI step can gate on that), 2 on a
usage error, 3 when COS cannot be read, 4 when some objects under the reports prefix are no
readable audit reports (skipped, each with a warning: the summary is incomplete), 0 otherwise.
Needs only the deploy package's dependencies; credentials and COS_ENDPOINT are read as the
function reads them (handlers/storage/cos.py builds the client).

The summarising (`summarise_reports`, `summarise_tags`, `render`) is pure; `CosListing` is
the thin adapter that lists and reads COS.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

import urllib3

from handlers.config import ConfigError, Settings, _endpoint, _report_prefix
from handlers.storage.records import STATE_PREFIX
from handlers.storage.tags import JOB_TAG, VERIFY_TAG

FAILING_VERDICTS = ("mismatch", "missing")  # what makes the exit status 1
FINE_VERDICTS = ("verified", "superseded")  # never listed as problems
FORMATS = ("table", "json", "csv")
PROGRESS_EVERY = 100
# Exit statuses (README, "Verification report"). A problem found outranks an incomplete summary.
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_COS, EXIT_UNREADABLE = 0, 1, 2, 3, 4
MAX_REPORT_BYTES = 16 * 1024 * 1024  # a job's report is kilobytes; a bigger object is none of ours
_FORMULA_SIGNS = ("=", "+", "-", "@")
_FORMULA_FIRST = (*_FORMULA_SIGNS, "\t", "\r", "\n", "\0")
# The function's own records under REPORT_PREFIX (else STATE_PREFIX): neither audit reports nor strays.
OWN_FOLDERS = ("notified/",  # notification markers (handlers/operations/notify.py)
               "hash-jobs/",  # the FileHashCode ledger (handlers/checking/hashledger.py)
               "settled/",  # the sweep's settled markers (handlers/operations/settled.py)
               "sweep/", "backfill/")  # the sweep's checkpoints and leases (handlers/reconcile/checkpoint.py)
REPORT_SUFFIX = ".json"  # an audit report is `<prefix><JobId>.json` (handlers/operations/audit.py)
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Listed:
    key: str
    last_modified: datetime


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

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "source": self.source, "jobs": dict(sorted(self.jobs.items())),
                "objects": dict(sorted(self.objects.items())),
                "problems": [_row_dict(row) for row in self.problems],
                "unreadable": [{"key": u.key, "reason": u.reason} for u in self.unreadable]}


def exit_status(summary: Summary) -> int:
    if summary.failing:
        return EXIT_PROBLEMS
    return EXIT_UNREADABLE if summary.unreadable else EXIT_OK


# --- pure: summarising ----------------------------------------------------------------------

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


def render(summary: Summary, form: str) -> str:
    if form == "json":
        return json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) + "\n"
    if form == "csv":
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


def since_cutoff(text: str, now: datetime) -> datetime:
    """`24h`, `30m`, `7d`, `2w` back from now, or an ISO date/time (UTC when it names no zone)."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: use a duration like 24h, 30m, 7d, or a date like 2026-11-23") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --- the COS adapter --------------------------------------------------------------------------

class CosListing:
    """Lists keys and reads reports and tags, through the function's own client factory."""

    def __init__(self, settings: Settings, bucket: str, region: str):
        from handlers.storage.cos import Clients  # the SDK is imported only when COS is really read
        self._client = Clients(settings).cos(region)
        self._bucket = bucket

    def keys(self, prefix: str) -> Iterator[Listed]:
        marker = ""
        while True:
            page = self._client.list_objects(Bucket=self._bucket, Prefix=prefix, Marker=marker, MaxKeys=1000)
            contents = page.get("Contents") or []
            for item in contents if isinstance(contents, list) else [contents]:
                yield Listed(item["Key"], _parse_time(item.get("LastModified", "")))
            if str(page.get("IsTruncated", "false")).lower() != "true" or not contents:
                return
            marker = page.get("NextMarker") or contents[-1]["Key"]

    def report(self, key: str) -> bytes:
        """The object's bytes, one more than MAX_REPORT_BYTES at most (parse_report judges them)."""
        stream = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].get_raw_stream()
        try:
            return bytes(stream.read(MAX_REPORT_BYTES + 1))
        finally:
            stream.close()

    def tags(self, key: str) -> dict[str, str]:
        data = self._client.get_object_tagging(Bucket=self._bucket, Key=key) or {}
        tag_list = (data.get("TagSet") or {}).get("Tag") or []
        if isinstance(tag_list, dict):
            tag_list = [tag_list]
        return {str(t.get("Key")): str(t.get("Value") or "") for t in tag_list}


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(timezone.utc)


def collect(listing: CosListing, bucket: str, prefix: str, reports_prefix: str, since: datetime | None,
            progress: Callable[[str], None]) -> Summary:
    """The reports when there are any under reports_prefix, else the tags under prefix."""
    def recent(items: Iterable[Listed]) -> Iterator[Listed]:
        for count, item in enumerate(items, start=1):
            if count % PROGRESS_EVERY == 0:
                progress(f"{count} keys listed...")
            if since is None or item.last_modified >= since:
                yield item

    with ThreadPoolExecutor(max_workers=8) as pool:
        if reports_prefix:
            listed = [i.key for i in recent(listing.keys(reports_prefix)) if not own_record(i.key, reports_prefix)]
            keys = [key for key in listed if key.endswith(REPORT_SUFFIX)]
            if listed:
                progress(f"reading {len(keys)} audit reports under {reports_prefix}")
                unreadable: list[Unreadable] = []
                for key in listed:  # named as no report is: not read, but counted (the summary is incomplete)
                    if not key.endswith(REPORT_SUFFIX):
                        unreadable.append(Unreadable(key, f"not named <JobId>{REPORT_SUFFIX}, as every audit "
                                                          "report is"))
                        progress(f"warning: {key} skipped, it is no audit report: {unreadable[-1].reason}")

                def readable() -> Iterator[dict[str, Any]]:
                    for key, body in zip(keys, pool.map(listing.report, keys), strict=True):
                        try:
                            yield parse_report(body)
                        except UnreadableReport as exc:
                            unreadable.append(Unreadable(key, str(exc)))
                            progress(f"warning: {key} skipped, it is no audit report: {exc}")
                summary = summarise_reports(bucket, readable(), prefix)
                summary.unreadable = unreadable
                return summary
            progress(f"no audit reports under {reports_prefix}: reading the objects' tags under {prefix or '/'}")
        # The function's own records (reports; notification markers without REPORT_PREFIX) are no outputs.
        keys = [i.key for i in recent(listing.keys(prefix))
                if not (reports_prefix and i.key.startswith(reports_prefix)) and not i.key.startswith(STATE_PREFIX)
                and not i.key.endswith("/")]
        progress(f"reading the tags of {len(keys)} objects under {prefix or '/'}")
        tags = pool.map(listing.tags, keys)
        return summarise_tags(bucket, zip(keys, tags, strict=True))


def own_record(key: str, reports_prefix: str) -> bool:
    """Whether `key`, under the reports prefix, is one of the function's own records (or a console folder)."""
    rest = key[len(reports_prefix):]
    return not rest or rest.endswith("/") or rest.startswith(OWN_FOLDERS)


# --- the command ----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m handlers.summary", description=__doc__.split("\n\n")[0])
    p.add_argument("--bucket", required=True, help="the output bucket, e.g. media-1250000000")
    p.add_argument("--region", help="its region (default: DEFAULT_REGION or TENCENTCLOUD_REGION)")
    p.add_argument("--since", help="only what changed in this window: 24h, 30m, 7d, or a date (default: all)")
    p.add_argument("--prefix", default="", help="only objects whose key starts with this")
    p.add_argument("--reports-prefix", help="where the audit reports are (default: REPORT_PREFIX; unset: use tags)")
    p.add_argument("--format", choices=FORMATS, default="table")
    return p


def local_settings(env: Mapping[str, str]) -> Settings:
    """Credentials and COS_ENDPOINT as the function reads them; nothing else is needed here."""
    missing = [n for n in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY") if not (env.get(n) or "").strip()]
    if missing:
        raise ConfigError(missing[0], f"{' and '.join(missing)} must be set: the keys of a CAM user or role "
                                      "allowed cos:GetBucket, cos:GetObject and cos:GetObjectTagging")
    return Settings(secret_id=env["TENCENTCLOUD_SECRETID"].strip(), secret_key=env["TENCENTCLOUD_SECRETKEY"].strip(),
                    token=env.get("TENCENTCLOUD_SESSIONTOKEN") or None, cos_endpoint=_endpoint(env, "COS_ENDPOINT"))


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    env = os.environ if env is None else env
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)  # exits 2 on a usage error
    region = args.region or env.get("DEFAULT_REGION") or env.get("TENCENTCLOUD_REGION")
    try:
        if not region:
            raise ValueError("--region is needed (or DEFAULT_REGION)")
        since = since_cutoff(args.since, datetime.now(timezone.utc)) if args.since else None
        reports_prefix = _report_prefix({"REPORT_PREFIX": args.reports_prefix if args.reports_prefix is not None
                                         else env.get("REPORT_PREFIX", "")}, "REPORT_PREFIX")
        settings = local_settings(env)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE

    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    from qcloud_cos.cos_exception import CosClientError, CosServiceError
    try:
        summary = collect(CosListing(settings, args.bucket, region), args.bucket, args.prefix.lstrip("/"),
                          reports_prefix, since, progress)
    except (CosServiceError, CosClientError) as exc:
        message = exc.get_error_msg() if isinstance(exc, CosServiceError) else str(exc)
        print(f"error: COS refused or could not be reached: {message}", file=err)
        return EXIT_COS
    except (OSError, urllib3.exceptions.HTTPError) as exc:  # a body that broke off while it was read
        print(f"error: COS could not be read: {type(exc).__name__}: {exc}", file=err)
        return EXIT_COS
    out.write(render(summary, args.format))
    return exit_status(summary)


if __name__ == "__main__":
    sys.exit(main())
