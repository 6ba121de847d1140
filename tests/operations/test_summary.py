"""The verification report (`python -m handlers.summary`, `dev.py report`) over a bucket seeded
by real callbacks through the function: counts, problems, formats and exit codes."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from handlers.operations.summary import (
    MAX_REPORT_BYTES,
    UnreadableReport,
    main,
    parse_report,
    since_cutoff,
    spreadsheet_text,
    summarise_reports,
)
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, http_event, invoke, md5
from tests.samples import BUCKET, REGION, job_xml

REPORTS = "ci-reports/"
GOOD, BAD, GONE = "j00000000000000000000000000000a1", "j00000000000000000000000000000b2", \
    "j00000000000000000000000000000c3"


def run(emulator, *args: str, **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environment = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                   "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint, **env}
    code = main(["--bucket", BUCKET, "--region", REGION, *args], environment, out, err)
    return code, out.getvalue(), err.getvalue()


def callback(app, job_id: str, outputs: dict[str, bytes], claimed: dict[str, bytes] | None = None) -> dict:
    md5s = {key: md5(data) for key, data in (claimed or outputs).items()}
    status, body, _ = invoke(app, http_event(job_xml(md5s, list(md5s), job_id=job_id)))
    assert status == 200, body
    return body


@pytest.fixture
def seeded(emulator, make_app):
    """Three jobs: one verified (two outputs), one whose output mismatches, one whose output is missing."""
    app = make_app(REPORT_PREFIX=REPORTS)
    emulator.put_object(BUCKET, "out/good/a.mp3", b"a" * 100)
    emulator.put_object(BUCKET, "out/good/b.mp3", b"b" * 100)
    callback(app, GOOD, {"out/good/a.mp3": b"a" * 100, "out/good/b.mp3": b"b" * 100})
    emulator.put_object(BUCKET, "out/bad/a.mp3", b"not what CI wrote")
    callback(app, BAD, {"out/bad/a.mp3": b"not what CI wrote"}, claimed={"out/bad/a.mp3": b"what CI wrote"})
    callback(app, GONE, {"out/gone/a.mp3": b"never uploaded"})
    return app


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


def test_the_functions_own_notification_markers_are_not_counted_as_outputs(emulator, make_app):
    from localcloud.webhook import WebhookReceiver
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    with WebhookReceiver() as hook:
        callback(make_app(NOTIFY_URL=hook.url(), NOTIFY_FORMAT="wecom"), BAD, {"out/bad.mp3": b"corrupt"}, claimed={"out/bad.mp3": b"good"})
    assert emulator.keys(BUCKET, ".ci-callback-verifier/")  # a marker was written
    code, out, _ = run(emulator, "--format", "json")
    assert code == 1 and json.loads(out)["objects"] == {"mismatch": 1}


def test_a_clean_prefix_exits_0(emulator, seeded):
    code, out, _ = run(emulator, "--prefix", "out/good/", REPORT_PREFIX=REPORTS)
    assert code == 0
    assert "problems: none" in out and "verified" in out


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


def test_since_leaves_out_what_is_older(emulator, seeded):
    code, out, _ = run(emulator, "--format", "json", "--since", "2099-01-01", REPORT_PREFIX=REPORTS)
    assert json.loads(out)["objects"] == {}
    assert code == 0


@pytest.mark.parametrize("args", [["--format", "xml"], ["--since", "yesterday"], ["--bogus"]])
def test_usage_errors_exit_2(emulator, args, capsys):
    try:
        code, _, err = run(emulator, *args)
    except SystemExit as exc:  # argparse's own usage errors
        code, err = exc.code, capsys.readouterr().err
    assert code == 2 and err


def test_missing_credentials_are_a_usage_error(emulator):
    out, err = io.StringIO(), io.StringIO()
    assert main(["--bucket", BUCKET, "--region", REGION], {}, out, err) == 2
    assert "TENCENTCLOUD_SECRETID" in err.getvalue()


def test_pure_summary_and_since():
    summary = summarise_reports(BUCKET, [{"jobId": "j1", "outcome": "failed-job", "code": "E1", "message": "boom",
                                          "objects": []}])
    assert summary.jobs == {"failed-job": 1} and summary.problems[0].reason == "E1; boom"
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert since_cutoff("24h", now) == datetime(2026, 1, 1, tzinfo=timezone.utc)


# --- a stray object under the reports prefix (issue 19, defect 8) ---------------------------------

STRAY = {  # what may sit under the prefix beside the function's reports, and why it is no report
    f"{REPORTS}notes.json": (b"these are not the reports you are looking for", "not JSON"),
    f"{REPORTS}bad-objects.json": (json.dumps({"jobId": "j1", "outcome": "failed", "objects": "out/x.mp3"}).encode(),
                                   "objects is not a list of objects with a key and a verdict"),
    f"{REPORTS}numbers.json": (json.dumps({"jobId": "j2", "outcome": "failed", "objects": [1, 2]}).encode(),
                               "objects is not a list of objects with a key and a verdict"),
    f"{REPORTS}list.json": (b"[]", "not a JSON object"),
}


@pytest.fixture
def strays(emulator, seeded):
    for key, (body, _) in STRAY.items():
        emulator.put_object(BUCKET, key, body)
    return seeded


def test_unreadable_reports_are_skipped_counted_and_exit_4(emulator, strays):
    code, out, err = run(emulator, "--format", "json", "--prefix", "out/good/", REPORT_PREFIX=REPORTS)
    assert code == 4  # nothing wrong among the readable reports, but the summary is incomplete
    summary = json.loads(out)
    assert summary["objects"] == {"verified": 2} and summary["jobs"] == {"verified": 1}
    assert {u["key"]: u["reason"].split(":")[0] for u in summary["unreadable"]} == {
        key: why for key, (_, why) in STRAY.items()}
    for key in STRAY:
        assert f"warning: {key}" in err


def test_a_mismatch_still_exits_1_beside_unreadable_reports(emulator, strays):
    code, out, _ = run(emulator, "--reports-prefix", REPORTS)
    assert code == 1
    assert "problems: 2" in out and "unreadable reports: 4" in out
    assert f"  {REPORTS}notes.json: not JSON" in out
    code, out, _ = run(emulator, "--format", "csv", "--reports-prefix", REPORTS)
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert code == 1 and len(rows) == 4 + len(STRAY)
    unreadable = {r["key"]: r for r in rows if r["outcome"] == "unreadable"}
    assert set(unreadable) == set(STRAY) and all(r["reason"] for r in unreadable.values())


@pytest.mark.parametrize("fault", [
    {"method": "GET", "key": f"{REPORTS}{GOOD}.json", "reset": True, "truncate": 10},  # a read that breaks off
    {"method": "GET", "key": "", "status": 403, "code": "AccessDenied"},  # the listing refused
], ids=["report-read-breaks-off", "listing-refused"])
def test_cos_that_cannot_be_read_exits_3_without_a_traceback(emulator, seeded, fault):
    emulator.add_fault(**fault, times=None)
    code, out, err = run(emulator, "--reports-prefix", REPORTS)
    assert code == 3 and out == ""
    assert err.splitlines()[-1].startswith("error: COS") and "Traceback" not in err


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


def test_python_m_handlers_summary_reports_an_unreadable_report_without_a_traceback(emulator, strays):
    """As a person runs it: a warning on stderr, the summary on stdout, exit status 4."""
    import subprocess
    import sys

    from localcloud.runner import ROOT
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY, "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
           "COS_ENDPOINT": emulator.endpoint, "REPORT_PREFIX": REPORTS, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "handlers.summary", "--bucket", BUCKET, "--region", REGION,
                           "--prefix", "out/good/"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and f"warning: {REPORTS}notes.json" in done.stderr
    assert "problems: none" in done.stdout and "unreadable reports: 4" in done.stdout


def test_an_object_under_the_reports_prefix_not_named_json_is_counted_unreadable_and_exits_4(emulator, seeded):
    """Red team, D8: README says anything under the reports prefix that is no audit report is skipped with a
    warning and exit 4. Before the fix only keys ending in `.json` were looked at: a stray `….jsn` or `….JSON`
    was silently ignored, `unreadable` stayed empty and the command exited 0."""
    strays = [f"{REPORTS}j00000000000000000000000000000d4.jsn", f"{REPORTS}j00000000000000000000000000000e5.JSON"]
    emulator.put_object(BUCKET, strays[0], b"<html>not a report</html>")
    emulator.put_object(BUCKET, strays[1], b"not json")
    code, out, err = run(emulator, "--format", "json", "--prefix", "out/good/", REPORT_PREFIX=REPORTS)
    summary = json.loads(out)
    assert code == 4, (code, summary["unreadable"])
    assert sorted(u["key"] for u in summary["unreadable"]) == sorted(strays)
    assert summary["objects"] == {"verified": 2}
    for key in strays:
        assert f"warning: {key}" in err


def test_the_functions_own_records_under_the_reports_prefix_are_neither_reports_nor_unreadable(emulator, make_app):
    """The function keeps its own records under REPORT_PREFIX (notification markers, the hash-job ledger, the
    sweep's settled markers, checkpoints and leases): they are no audit reports, and counting them as
    unreadable would make every summary exit 4."""
    from localcloud.webhook import WebhookReceiver
    emulator.put_object(BUCKET, "out/good/a.mp3", b"a" * 100)
    with WebhookReceiver() as hook:  # a real notification marker, written by the function
        app = make_app(REPORT_PREFIX=REPORTS, NOTIFY_URL=hook.url(), NOTIFY_FORMAT="wecom", NOTIFY_ON="verified")
        callback(app, GOOD, {"out/good/a.mp3": b"a" * 100})
        assert len(hook.requests) == 1
    assert emulator.keys(BUCKET, f"{REPORTS}notified/")
    for key in (f"{REPORTS}hash-jobs/0123456789abcdef0123456789abcdef/etag", f"{REPORTS}settled/{GOOD}",
                f"{REPORTS}sweep/queue/VoiceSeparate.checkpoint", f"{REPORTS}sweep/queue/VoiceSeparate.lease",
                f"{REPORTS}backfill/queue/VoiceSeparate.checkpoint", f"{REPORTS}notified/{GOOD}/other.json", REPORTS):
        emulator.put_object(BUCKET, key, b"the function's own record")
    code, out, err = run(emulator, "--format", "json", REPORT_PREFIX=REPORTS)
    summary = json.loads(out)
    assert (code, summary["unreadable"], summary["objects"]) == (0, [], {"verified": 1}), err


# --- CSV cells are text, never formulas (issue 19, defect 7) -------------------------------------

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
