"""The report command's formats (handlers/operations/report_command/render.py): the table, CSV with a row per
object, and CSV cells a spreadsheet shows as text, never runs as formulas (issue 19, defect 7)."""
from __future__ import annotations

import csv
import io
import json

import pytest

from handlers.operations.report_command.render import spreadsheet_text
from tests.conftest import http_event, invoke, md5
from tests.operations.report_command.conftest import BAD, GONE, REPORTS, run
from tests.samples import job_xml


def test_table_lists_the_problems_with_their_reasons(emulator, seeded):
    code, out, _ = run(emulator, "--reports-prefix", REPORTS)
    assert code == 1
    assert "jobs by outcome:" in out and "objects by verdict:" in out and "problems: 2" in out
    assert f"mismatch     {BAD} out/bad/a.mp3" in out and f"missing      {GONE} out/gone/a.mp3" in out


def test_csv_has_a_row_per_object(emulator, seeded):
    code, out, _ = run(emulator, "--format", "csv", "--reports-prefix", REPORTS)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1 and len(rows) == 4
    assert {(r["key"], r["verdict"]) for r in rows} == {("out/good/a.mp3", "verified"), ("out/good/b.mp3", "verified"),
                                                      ("out/bad/a.mp3", "mismatch"), ("out/gone/a.mp3", "missing")}


FORMULA_KEY = "out/=x.mp3"  # a formula only at the start of a cell: this one is harmless


EVIL_KEYS = ['=HYPERLINK("https://evil.example/x","open").mp3', "+1+1.mp3", "-2+3.mp3", "@SUM(1+1).mp3"]


FAILED_JOBS = {"j00000000000000000000000000000d4": ("-1+1", "@SUM(1+1)"),  # Code and Message as CI sent them
               "j00000000000000000000000000000e5": ("", "&#9;=1+1"),  # (the function strips the blanks)
               "j00000000000000000000000000000a7": ("E1", "line one&#13;=1+1")}


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text(emulator, make_app):
    """Keys CI named (here: missing outputs, so any key the callback may carry), CI's Code and
    Message: a cell that begins with = + - @, a tab or a CR (OWASP's list) is written with a
    single quote before it; a CR inside a cell starts no row (whose first cell would be a formula)."""
    app = make_app(REPORT_PREFIX=REPORTS)
    body = job_xml({key: md5(b"never uploaded") for key in [*EVIL_KEYS, FORMULA_KEY]}, [], job_id=BAD)
    assert invoke(app, http_event(body))[0] == 200
    for job_id, (ci_code, message) in FAILED_JOBS.items():
        failed = job_xml(None, [], job_id=job_id, state="Failed", code=ci_code, message=message)
        assert invoke(app, http_event(failed))[0] == 200
    code, out, _ = run(emulator, "--format", "csv", REPORT_PREFIX=REPORTS)
    assert code == 1
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["jobId", "outcome", "bucket", "key", "verdict", "reason"]
    assert len(rows) == 1 + len(EVIL_KEYS) + 1 + len(FAILED_JOBS), rows
    assert {row[3] for row in rows[1:] if row[1] == "failed"} == {"'" + key for key in EVIL_KEYS} | {FORMULA_KEY}
    reasons = {row[0]: row[5] for row in rows if row[1] == "failed-job"}
    assert reasons == {"j00000000000000000000000000000d4": "'-1+1; @SUM(1+1)",
                       "j00000000000000000000000000000e5": "'=1+1", "j00000000000000000000000000000a7": "E1; line one\r=1+1"}
    for row in rows:  # no cell a spreadsheet would evaluate
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row
    # JSON is for programs: the keys stay exactly as CI named them.
    _, out, _ = run(emulator, "--format", "json", REPORT_PREFIX=REPORTS)
    assert {p["key"] for p in json.loads(out)["problems"]} >= set(EVIL_KEYS)


@pytest.mark.parametrize("cell, written", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("\n=1", "'\n=1"), ("\0=1", "'\0=1"),  # LF and NUL: ASVS 1.2.10 names NUL; an LF starts a line like a CR
    ("  =1+1", "'  =1+1"), ("\u3000@x", "'\u3000@x"),  # blanks first: importers that trim them would see a formula
    ("out/a=b.mp3", "out/a=b.mp3"), ("'=1", "'=1"), ("", ""), ("verified", "verified"), (" x", " x"),
])
def test_spreadsheet_text(cell, written):
    assert spreadsheet_text(cell) == written

