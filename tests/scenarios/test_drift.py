"""Drift tests: variants of the published payloads that change only what decides nothing get
exactly the status and verdicts of the original, end to end against the emulator.

DRIFT_EXAMPLES sets the examples per payload (CI: a few; `DRIFT_EXAMPLES=300 python3 dev.py
test tests/scenarios/test_drift.py` for a long run).
"""
from __future__ import annotations

import copy
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.app import App
from handlers.settings import Settings
from localcloud.cos import CosEmulator
from tests.conftest import SECRET_ID, SECRET_KEY, TOKEN, function_env, http_event, invoke
from tests.corpus import CALLBACK_KINDS, entries, seed, seeded
from tests.drift import MUTATIONS, dump, load, mutate

pytestmark = pytest.mark.slow  # payload variants, each end to end

EXAMPLES = int(os.environ.get("DRIFT_EXAMPLES", "30"))
PAYLOADS = entries(*CALLBACK_KINDS)
RUN = {"examples": 0, "mutations": 0}


@pytest.fixture(scope="module")
def world():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN) as emulator:
        app = App(Settings.from_env(function_env(emulator, ALLOWED_BUCKETS="*", DEFAULT_REGION="ap-chongqing")))
        yield emulator, app, {}
        app.close()
    print(f"\ndrift: {RUN['examples']} examples, {RUN['mutations']} mutations over {len(PAYLOADS)} payloads")


def answer(app: App, body: bytes, fmt: str) -> tuple[int, list]:
    status, result, _ = invoke(app, http_event(body, "application/json" if fmt == "json" else "application/xml"))
    jobs = [(j["jobId"], j["outcome"], sorted((o["bucket"], o["key"], o["verdict"], o.get("expectedMd5"))
                                                for o in j["objects"])) for j in result.get("jobs", [])]
    return status, jobs or [result.get("error")]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.file)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),  # load must not fail it
          database=None)
@given(seed_=st.integers(0, 2**32), kinds=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=6))
def test_drift_changes_nothing_that_decides(world, payload, seed_, kinds):
    emulator, app, originals = world
    if payload.file not in originals:
        body = seeded(payload)
        seed(emulator, payload, body)
        originals[payload.file] = (body, answer(app, body, payload.format))
    body, expected = originals[payload.file]
    assert expected[0] == 200, expected
    tree = load(body, payload.format)
    rng = random.Random(seed_)
    drifted = copy.deepcopy(tree)
    done = [change for kind in kinds if (change := mutate(drifted, payload.format, kind, rng))]
    RUN["examples"] += 1
    RUN["mutations"] += len(done)
    assert answer(app, dump(drifted, payload.format), payload.format) == expected, done
