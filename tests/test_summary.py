"""The verification report (`python -m handlers.summary`, `dev.py report`) over a bucket seeded
by real callbacks through the function: counts, problems, formats and exit codes."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from handlers.summary import main, since_cutoff, summarise_reports
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
