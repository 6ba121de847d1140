"""Settings: defaults, and an error naming the variable for every bad value."""
import pytest

from handlers.config import ConfigError, Endpoint
from handlers.settings import Settings

BASE = {"TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key"}


def test_defaults():
    s = Settings.from_env(BASE)
    assert (s.verify_mode, s.concurrency, s.max_body_bytes, s.cos_endpoint, s.token) == (
        "auto", 16, 1 << 20, None, None)
    assert s.action_verified == s.action_failed == frozenset({"tag"})


def test_values_are_read():
    s = Settings.from_env({**BASE, "TENCENTCLOUD_SESSIONTOKEN": "t", "COS_ENDPOINT": "http://127.0.0.1:9000",
                           "VERIFY_MODE": "FULL", "ACTION_VERIFIED": "none", "CONCURRENCY": "4"})
    assert s.token == "t" and s.verify_mode == "full" and s.concurrency == 4
    assert s.cos_endpoint == Endpoint("http", "127.0.0.1", 9000)
    assert s.action_verified == frozenset()


@pytest.mark.parametrize("variable, value", [
    ("TENCENTCLOUD_SECRETID", ""),
    ("TENCENTCLOUD_SECRETKEY", " "),
    ("VERIFY_MODE", "sometimes"),
    ("ACTION_VERIFIED", "delete"),
    ("ACTION_FAILED", ","),
    ("CONCURRENCY", "0"),
    ("CONCURRENCY", "many"),
    ("MAX_BODY_BYTES", "10"),
    ("COS_ENDPOINT", "127.0.0.1:9000"),
    ("COS_ENDPOINT", "http://host:port"),
    ("COS_ENDPOINT", "http://127.0.0.1:9000/some/path"),
])
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, variable: value})
    assert info.value.variable == variable
    assert str(info.value).startswith(variable)
