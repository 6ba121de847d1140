"""The notification settings (NOTIFY_URL, NOTIFY_SECRET, NOTIFY_FORMAT, NOTIFY_ON; read in config.py), checked
at cold start with the other problems."""
from __future__ import annotations

import base64

import pytest

from handlers.config import ConfigError
from handlers.settings import Settings
from tests.conftest import function_env
from tests.operations.notifications.conftest import SECRET


@pytest.mark.parametrize("env, variable", [
    ({"NOTIFY_URL": "ftp://example.com/x", "NOTIFY_SECRET": SECRET}, "NOTIFY_URL"),
    ({"NOTIFY_URL": "https://example.com/x"}, "NOTIFY_SECRET"),  # json is always signed
    ({"NOTIFY_URL": "https://example.com/x", "NOTIFY_SECRET": "plain-secret"}, "NOTIFY_SECRET"),
    ({"NOTIFY_URL": "https://example.com/x", "NOTIFY_SECRET": "whsec_" + base64.b64encode(b"short").decode()},
     "NOTIFY_SECRET"),
    ({"NOTIFY_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "NOTIFY_SECRET": "s"}, "NOTIFY_SECRET"),
    ({"NOTIFY_URL": "https://example.com/x", "NOTIFY_FORMAT": "slack", "NOTIFY_SECRET": SECRET}, "NOTIFY_FORMAT"),
    ({"NOTIFY_ON": "mismatch,exploded"}, "NOTIFY_ON"),
])
def test_notification_settings_are_checked_at_cold_start(emulator, env, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(function_env(emulator, **env))
    assert caught.value.variable == variable
    assert "key=k" not in str(caught.value)


def test_a_missing_notify_secret_is_reported_with_the_other_problems(emulator):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(function_env(emulator, NOTIFY_URL="https://example.com/hook", CONCURRENCY="0"))
    assert "NOTIFY_SECRET" in str(caught.value) and "CONCURRENCY" in str(caught.value)


def test_robot_urls_pick_their_format_when_notify_format_is_unset(emulator):
    settings = Settings.from_env(function_env(
        emulator, NOTIFY_URL="https://oapi.dingtalk.com/robot/send?access_token=t,https://example.com/hook",
        NOTIFY_SECRET=SECRET))
    from handlers.config import notify_format_of
    assert [notify_format_of(u, settings.notify_format) for u in settings.notify_urls] == ["dingtalk", "json"]
    assert settings.notify_on == {"mismatch", "missing", "error", "failed-job"}
