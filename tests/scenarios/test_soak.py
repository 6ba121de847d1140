"""A reduced soak run, lost callbacks included (the full one: `python -m localcloud soak --callbacks 1000`)."""
import os

import pytest

from localcloud.soak import run

pytestmark = pytest.mark.slow  # a reduced soak run

CALLBACKS = int(os.environ.get("SOAK_CALLBACKS", "60"))


def test_soak_loses_nothing_and_marks_nothing_wrongly():
    figures = run(CALLBACKS, seed=11, quiet=True)
    assert figures.deliveries >= CALLBACKS - figures.callbacks_lost and figures.faults_injected > 0
    assert figures.callbacks_lost > 0 and figures.checked_by_sweep >= figures.callbacks_lost
    assert figures.objects_lost == 0
    assert figures.wrong_verdicts == 0
    assert figures.problems == []
