"""A misconfigured function names every problem at once, and says how to run it locally."""
import json

import pytest

from handlers.app import create, misconfigured
from handlers.config import ConfigError
from handlers.intake.auth import configuration_problem
from handlers.settings import Settings

BASE = {"TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key"}
EVERYTHING_UNSET = ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "CALLBACK_TOKEN", "ALLOWED_BUCKETS")


def test_with_nothing_configured_every_missing_setting_is_named_in_one_answer():
    error = create({})
    assert isinstance(error, ConfigError)
    assert error.variable == "TENCENTCLOUD_SECRETID"  # the first one, for tools that read one name
    message = str(error)
    for variable in EVERYTHING_UNSET:
        assert variable in message, message
    assert "COS_ENDPOINT" in message and "dev.py serve" in message  # how to run it locally
    body = json.loads(misconfigured(error)["body"])
    assert body["setting"] == "TENCENTCLOUD_SECRETID"
    assert all(variable in body["error"] for variable in EVERYTHING_UNSET)


def test_several_bad_values_are_reported_together():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, "VERIFY_MODE": "sometimes", "CONCURRENCY": "0", "COS_ENDPOINT": "nowhere"})
    message = str(info.value)
    assert info.value.variable == "COS_ENDPOINT" or message.startswith(info.value.variable)
    for variable in ("VERIFY_MODE", "CONCURRENCY", "COS_ENDPOINT"):
        assert variable in message, message


def test_security_settings_missing_together_are_named_together():
    problem = configuration_problem(Settings.from_env(BASE))
    assert problem is not None and problem.variable == "CALLBACK_TOKEN"
    assert "ALLOWED_BUCKETS" in str(problem)


@pytest.mark.parametrize("variable", ["CALLBACK_TOKEN", "ALLOWED_BUCKETS", "VERIFY_MODE"])
def test_an_unresolved_serverless_placeholder_is_named_as_such(variable):
    placeholder = "${env:" + variable + "}"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, "CALLBACK_TOKEN": "a-good-token-1", "ALLOWED_BUCKETS": "media-1250000000",
                           variable: placeholder})
    assert info.value.variable == variable
    assert placeholder in str(info.value) and "unresolved" in str(info.value)
