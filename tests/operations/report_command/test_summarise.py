"""What the report command counts (handlers/operations/report_command/summarise.py): jobs by outcome, objects
by verdict, the problems, from the audit reports or else the tags; what is no audit report; --since."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from handlers.operations.report_command.summarise import (
    MAX_REPORT_BYTES,
    UnreadableReport,
    parse_report,
    since_cutoff,
    summarise_reports,
)
from tests.operations.report_command.conftest import BAD, GONE, REPORTS, run
from tests.samples import BUCKET


def test_report_counts_match_the_seeded_bucket_and_exit_1_on_problems(emulator, seeded):
    code, out, err = run(emulator, "--format", "json", REPORT_PREFIX=REPORTS)
    assert code == 1
    summary = json.loads(out)
    assert summary["source"] == "reports"
    assert summary["jobs"] == {"failed": 2, "verified": 1}
    assert summary["objects"] == {"mismatch": 1, "missing": 1, "verified": 2}
    problems = {(p["jobId"], p["key"], p["verdict"]) for p in summary["problems"]}
    assert problems == {(BAD, "out/bad/a.mp3", "mismatch"), (GONE, "out/gone/a.mp3", "missing")}
    assert all(p["reason"] for p in summary["problems"])
    assert "audit reports" in err  # progress goes to stderr, the report to stdout


def test_without_reports_the_tags_are_summarised(emulator, seeded):
    code, out, _ = run(emulator, "--format", "json", "--prefix", "out/")
    summary = json.loads(out)
    assert summary["source"] == "tags"
    assert summary["objects"] == {"mismatch": 1, "verified": 2}  # a missing output has no object to tag
    assert summary["jobs"] == {"failed": 1, "verified": 1}
    assert [(p["jobId"], p["key"]) for p in summary["problems"]] == [(BAD, "out/bad/a.mp3")]
    assert code == 1


def test_a_clean_prefix_exits_0(emulator, seeded):
    code, out, _ = run(emulator, "--prefix", "out/good/", REPORT_PREFIX=REPORTS)
    assert code == 0
    assert "problems: none" in out and "verified" in out


def test_since_leaves_out_what_is_older(emulator, seeded):
    code, out, _ = run(emulator, "--format", "json", "--since", "2099-01-01", REPORT_PREFIX=REPORTS)
    assert json.loads(out)["objects"] == {}
    assert code == 0


def test_pure_summary_and_since():
    summary = summarise_reports(BUCKET, [{"jobId": "j1", "outcome": "failed-job", "code": "E1", "message": "boom",
                                          "objects": []}])
    assert summary.jobs == {"failed-job": 1} and summary.problems[0].reason == "E1; boom"
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert since_cutoff("24h", now) == datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["2026-11-30T21:08:05+0000", "2026-11-30T21:08:05Z", "2026-11-30T21:08:05+00:00",
                                  "2026-11-30 21:08:05+0000"])
def test_since_reads_the_forms_the_backfill_and_operators_write_under_python_3_10_too(text):
    """The backfill hands its period to the next round in CI's form (`+0000`), which Python 3.10's
    fromisoformat (SCF's runtime) refuses: under `dev.py compat` the deployed backfill's second round was
    refused ("--since ... use a duration") until since_cutoff read it itself."""
    now = datetime(2026, 12, 7, tzinfo=timezone.utc)
    assert since_cutoff(text, now) == datetime(2026, 11, 30, 21, 8, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("body, why", [
    (b"\xff\xfe{", "not JSON"), (b"[" * 100_000, "not JSON"), (b'"a string"', "not a JSON object"),
    (b'{"outcome": "verified", "objects": []}', "no jobId"), (b'{"jobId": 7, "objects": []}', "no jobId and no outcome"),
    (b'{"jobId": "j", "outcome": "verified"}', "objects is not a list"),
    (b'{"jobId": "j", "outcome": "verified", "objects": [{"key": "a.mp3"}]}', "objects is not a list"),
    (b" " * (MAX_REPORT_BYTES + 1), "larger than 16 MiB"),
])
def test_what_is_no_audit_report(body, why):
    with pytest.raises(UnreadableReport, match=f"^{why}"):
        parse_report(body)

