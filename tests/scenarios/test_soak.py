"""A reduced soak run, lost callbacks included (the full one: `python -m localcloud soak --callbacks 1000`)."""
import json
import os
import re
from pathlib import Path

import pytest

from localcloud.soak import main, run

pytestmark = pytest.mark.slow  # a reduced soak run

CALLBACKS = int(os.environ.get("SOAK_CALLBACKS", "60"))


def test_soak_loses_nothing_and_marks_nothing_wrongly():
    figures = run(CALLBACKS, seed=11, quiet=True)
    assert figures.deliveries >= CALLBACKS - figures.callbacks_lost and figures.faults_injected > 0
    assert figures.callbacks_lost > 0 and figures.checked_by_sweep >= figures.callbacks_lost
    assert figures.objects_lost == 0
    assert figures.wrong_verdicts == 0
    assert figures.problems == []



def test_a_soak_run_prints_its_progress_and_summary_not_the_errors_of_the_faults_it_injects(capsys):
    """Issue 21, item 2: the faults are injected on purpose, and before this change the function's log lines
    of them (ERROR, `outcome: retry`, answered 503) filled the screen between the soak's own lines. Now they
    go to a file the first line names; stdout has the stages and ends with the summary."""
    code = main(["--callbacks", "30", "--seed", "1"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert code == 0, out
    assert "ERROR" not in out, out
    assert any(re.fullmatch(r"  delivered \d+/\d+", line) for line in lines), out
    assert re.fullmatch(r"OK: \d+ objects, 0 lost, 0 wrongly marked, 0 problems \(\d+\.\d s\)", lines[-1]), out
    log = Path(re.search(r"the function's log lines go to (\S+) ", lines[0]).group(1))
    try:
        assert f"the function's log: {log} " in out
        levels = [json.loads(line)["level"] for line in log.read_text().splitlines()]
        assert "ERROR" in levels  # the injected faults, kept in the file
    finally:
        log.unlink()
