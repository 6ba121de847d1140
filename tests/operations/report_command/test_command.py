"""The report command as it is run (`python -m handlers.summary`, `dev.py report`;
handlers/operations/report_command/command.py): usage errors exit 2, COS that cannot be read exits 3 without a
traceback, an incomplete summary exits 4."""
from __future__ import annotations

import io
import json

import pytest

from handlers.operations.report_command.command import main
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN
from tests.operations.report_command.conftest import GOOD, REPORTS, run
from tests.samples import BUCKET, REGION


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


@pytest.mark.parametrize("name", ["DEFAULT_REGION", "TENCENTCLOUD_REGION"])
def test_without_region_the_functions_own_region_setting_names_it(emulator, seeded, name):
    """`dev.py report` in the shell `dev.py serve` prints the settings for (DEFAULT_REGION among them), or where
    SCF's TENCENTCLOUD_REGION is set, needs no --region."""
    out, err = io.StringIO(), io.StringIO()
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY, "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
           "COS_ENDPOINT": emulator.endpoint, "REPORT_PREFIX": REPORTS, name: REGION}
    assert main(["--bucket", BUCKET, "--format", "json"], env, out, err) == 1, err.getvalue()
    assert json.loads(out.getvalue())["objects"] == {"mismatch": 1, "missing": 1, "verified": 2}


def test_no_region_anywhere_is_a_usage_error_that_says_where_to_give_one(emulator):
    out, err = io.StringIO(), io.StringIO()
    env = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY, "COS_ENDPOINT": emulator.endpoint}
    assert main(["--bucket", BUCKET], env, out, err) == 2 and out.getvalue() == ""
    assert all(name in err.getvalue() for name in ("--region", "DEFAULT_REGION", "TENCENTCLOUD_REGION")), err.getvalue()


@pytest.mark.parametrize("fault", [
    {"method": "GET", "key": f"{REPORTS}{GOOD}.json", "reset": True, "truncate": 10},  # a read that breaks off
    {"method": "GET", "key": "", "status": 403, "code": "AccessDenied"},  # the listing refused
], ids=["report-read-breaks-off", "listing-refused"])
def test_cos_that_cannot_be_read_exits_3_without_a_traceback(emulator, seeded, fault):
    emulator.add_fault(**fault, times=None)
    code, out, err = run(emulator, "--reports-prefix", REPORTS)
    assert code == 3 and out == ""
    assert err.splitlines()[-1].startswith("error: COS") and "Traceback" not in err


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

