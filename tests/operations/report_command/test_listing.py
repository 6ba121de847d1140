"""What the report command reads from COS (handlers/operations/report_command/listing.py): the function's own
records are neither outputs nor reports; a stray object under the reports prefix is skipped with a warning and
counted unreadable (issue 19, defect 8)."""
from __future__ import annotations

import csv
import io
import json

from tests.operations.report_command.conftest import BAD, GOOD, REPORTS, STRAY, callback, run
from tests.samples import BUCKET


def test_the_functions_own_notification_markers_are_not_counted_as_outputs(emulator, make_app):
    from localcloud.webhook import WebhookReceiver
    emulator.put_object(BUCKET, "out/bad.mp3", b"corrupt")
    with WebhookReceiver() as hook:
        callback(make_app(NOTIFY_URL=hook.url(), NOTIFY_FORMAT="wecom"), BAD, {"out/bad.mp3": b"corrupt"}, claimed={"out/bad.mp3": b"good"})
    assert emulator.keys(BUCKET, ".ci-callback-verifier/")  # a marker was written
    code, out, _ = run(emulator, "--format", "json")
    assert code == 1 and json.loads(out)["objects"] == {"mismatch": 1}


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

