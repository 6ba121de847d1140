"""Configuration problems are named by their real cause (issue 21 items 2 and 4): a missing region,
an invalid token, an empty move prefix, the local-run hint, the session token, ACTION_MISMATCH."""
import json

import pytest

from handlers.app import App, create
from handlers.config import ConfigError
from handlers.settings import Settings
from tests.conftest import CALLBACK_TOKEN, http_event, invoke
from tests.samples import BUCKET, REGION, job_xml

BASE = {"TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key", "CALLBACK_TOKEN": CALLBACK_TOKEN,
        "ALLOWED_BUCKETS": BUCKET}
TIMER = {"Type": "Timer", "TriggerName": "reconcile", "Time": "2026-11-23T12:00:00Z", "Message": ""}
WORKFLOW_FINISH = (f"<Response><EventName>WorkflowFinish</EventName><WorkflowExecution><WorkflowId>w1</WorkflowId>"
                   f"<RunId>i1</RunId><State>Success</State><BucketId>{BUCKET}</BucketId><Object>in.mp4</Object>"
                   "<Tasks><Type>Transcode</Type><State>Success</State><JobId>j0123456789abcdef0123456789abcdef</JobId>"
                   "<Name>Transcode_1</Name></Tasks></WorkflowExecution></Response>")


def problem(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return info.value


# --- DEFAULT_REGION --------------------------------------------------------------------------

def test_a_workflow_finish_without_a_region_is_a_configuration_problem_not_the_callers(emulator, make_app):
    status, answer, _ = invoke(make_app(), http_event(WORKFLOW_FINISH))
    assert status == 500, answer
    assert answer["setting"] == "DEFAULT_REGION" and "malformed" not in answer["error"]
    assert emulator.requests == []


def test_a_timer_tick_that_cannot_sweep_for_want_of_a_region_fails_naming_it(emulator, make_app):
    app = make_app()  # ALLOWED_BUCKETS lists the bucket; no DEFAULT_REGION, no TENCENTCLOUD_REGION
    with pytest.raises(ConfigError) as info:
        app.handle(TIMER, {"time_limit_in_ms": 30000})
    assert info.value.variable == "DEFAULT_REGION" and BUCKET in str(info.value)
    assert emulator.requests == []


def test_with_a_region_the_same_timer_sweeps_the_allowed_buckets(emulator, make_app):
    swept = make_app(DEFAULT_REGION=REGION).handle(TIMER, {"time_limit_in_ms": 30000})["sweep"]
    assert isinstance(swept, dict), swept


# --- one problem per variable, with its real reason -------------------------------------------

def test_a_short_token_is_reported_once_as_too_short_not_also_as_unset():
    error = problem({**BASE, "CALLBACK_TOKEN": "short", "VERIFY_MODE": "sometimes"})
    message = str(error)
    assert message.count("CALLBACK_TOKEN") == 1, message
    assert "at least 8 characters" in message and "is not set" not in message


def test_an_invalid_callback_token_alone_is_reported_as_invalid():
    error = problem({**BASE, "CALLBACK_TOKEN": "short"})
    assert error.variable == "CALLBACK_TOKEN" and "is not set" not in str(error)


# --- empty destination prefixes ---------------------------------------------------------------

def test_an_empty_prefix_is_accepted_when_nothing_moves():
    s = Settings.from_env({**BASE, "VERIFIED_PREFIX": "", "QUARANTINE_PREFIX": ""})
    assert s.verified_destination == s.quarantine_destination == "{key}"


def test_an_empty_prefix_is_refused_where_it_would_move_objects_onto_themselves():
    error = problem({**BASE, "ACTION_VERIFIED": "move", "VERIFIED_PREFIX": "", "VERIFIED_BUCKET": BUCKET})
    assert error.variable == "VERIFIED_PREFIX" and "onto themselves" in str(error)


def test_an_unresolved_placeholder_in_a_prefix_is_named_as_unresolved():
    error = problem({**BASE, "QUARANTINE_PREFIX": "${env:QUARANTINE_PREFIX}"})
    assert error.variable == "QUARANTINE_PREFIX" and "unresolved" in str(error)


# --- the local-run hint -----------------------------------------------------------------------

def test_the_local_hint_points_to_serve_and_not_to_its_function_url_port():
    message = str(create({}))
    assert "python3 dev.py serve" in message and "9000" not in message


# --- ACTION_MISMATCH, formerly ACTION_FAILED --------------------------------------------------

def test_action_mismatch_names_what_mismatched_objects_get():
    assert Settings.from_env({**BASE, "ACTION_MISMATCH": "move"}).action_failed == frozenset({"move"})


def test_action_failed_is_still_read_and_its_deprecation_is_logged_once(log_lines):
    env = {**BASE, "ACTION_FAILED": "move,tag"}
    app = create(env)
    assert isinstance(app, App) and app.settings.action_failed == frozenset({"move", "tag"})
    warned = [json.loads(line) for line in log_lines if "ACTION_FAILED" in line]
    assert len(warned) == 1 and warned[0]["level"] == "WARNING" and "ACTION_MISMATCH" in warned[0]["message"]
    app.close()


def test_action_failed_and_action_mismatch_that_differ_are_a_configuration_problem():
    error = problem({**BASE, "ACTION_FAILED": "move", "ACTION_MISMATCH": "tag"})
    assert error.variable == "ACTION_MISMATCH" and "ACTION_FAILED" in str(error)
    assert Settings.from_env({**BASE, "ACTION_FAILED": "move", "ACTION_MISMATCH": "move"}).action_failed \
        == frozenset({"move"})


# --- the session token ------------------------------------------------------------------------

def test_temporary_keys_without_their_session_token_are_named_not_the_roles_permissions(emulator, make_app):
    """COS refuses a temporary SecretId sent without its session token (the emulator: 403 InvalidToken):
    the answer names TENCENTCLOUD_SESSIONTOKEN, not a CAM permission the role may well have."""
    app = make_app(TENCENTCLOUD_SESSIONTOKEN="", VERIFY_WITH_CI="true")
    status, answer, _ = invoke(app, http_event(job_xml(md5s={"out/a.mp3": "0" * 32}, names=["out/a.mp3"])))
    text = json.dumps(answer)
    assert status >= 500 and "TENCENTCLOUD_SESSIONTOKEN" in text, (status, answer)
    assert "execution role needs" not in text
