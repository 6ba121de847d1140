"""The token and the allow-lists as pure functions, and the settings that configure them."""
import pytest

from handlers.config import ConfigError
from handlers.intake.auth import (
    authenticate,
    check_allowed,
    configuration_problem,
    presented_tokens,
    redacted_target,
    token_accepted,
)
from handlers.intake.callback import parse_callback
from handlers.intake.http import HttpError, HttpRequest
from handlers.settings import Settings
from tests.samples import BUCKET, job_xml

BASE = {"TENCENTCLOUD_SECRETID": "id", "TENCENTCLOUD_SECRETKEY": "key"}
SECURE = {**BASE, "CALLBACK_TOKEN": "old-token-1,new-token-2", "ALLOWED_BUCKETS": BUCKET}


def settings(**env: str) -> Settings:
    return Settings.from_env({**SECURE, **env})


def request(path: str = "/", query: dict | None = None, headers: dict | None = None) -> HttpRequest:
    return HttpRequest("POST", path, headers or {}, query or {}, b"")


# --- settings ---------------------------------------------------------------------------

def test_security_settings_are_read():
    s = settings(ALLOWED_PREFIXES="/output/, audio/", VERIFY_WITH_CI="false")
    assert s.callback_tokens == ("old-token-1", "new-token-2")
    assert s.allowed_buckets == frozenset({BUCKET}) and s.allowed_prefixes == ("output/", "audio/")
    assert (s.verify_with_ci, s.allow_unauthenticated) == (False, False)
    assert configuration_problem(s) is None


def test_defaults_verify_with_ci_and_refuse_everything_until_configured():
    s = Settings.from_env(BASE)
    assert s.verify_with_ci is True and s.callback_tokens == () and s.allowed_buckets == frozenset()
    problem = configuration_problem(s)
    assert problem.variable == "CALLBACK_TOKEN" and "ALLOW_UNAUTHENTICATED=true" in str(problem)


@pytest.mark.parametrize("env, variable", [
    ({"CALLBACK_TOKEN": ""}, "CALLBACK_TOKEN"),
    ({"ALLOWED_BUCKETS": ""}, "ALLOWED_BUCKETS"),
    ({"ALLOW_UNAUTHENTICATED": "true"}, "ALLOW_UNAUTHENTICATED"),
])
def test_every_callback_is_refused_when_security_is_not_configured(env, variable):
    assert configuration_problem(settings(**env)).variable == variable


def test_allow_unauthenticated_must_be_explicit():
    s = settings(CALLBACK_TOKEN="", ALLOW_UNAUTHENTICATED="true")
    assert configuration_problem(s) is None
    authenticate(request(), s)  # no token needed


@pytest.mark.parametrize("variable, value", [
    ("CALLBACK_TOKEN", "short"),
    ("CALLBACK_TOKEN", "has space in it"),
    ("CALLBACK_TOKEN", "good-token-1,bad+token/2"),
    ("ALLOWED_BUCKETS", "*,test-123456789"),
    ("ALLOWED_BUCKETS", "no-appid"),
    ("ALLOWED_BUCKETS", "Upper-1250000000"),
    ("ALLOWED_PREFIXES", "/"),
    ("VERIFY_WITH_CI", "maybe"),
    ("ALLOW_UNAUTHENTICATED", "yes please"),
])
def test_bad_security_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**SECURE, variable: value})
    assert info.value.variable == variable


def test_a_bad_token_is_never_echoed():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**SECURE, "CALLBACK_TOKEN": "secret+value"})
    assert "secret+value" not in str(info.value)


# --- the token ---------------------------------------------------------------------------

def test_token_is_found_in_query_header_or_last_path_segment():
    assert presented_tokens(request(query={"token": "q"})) == ("q",)
    assert presented_tokens(request(headers={"x-callback-token": "h"})) == ("h",)
    assert presented_tokens(request(path="/ci/callback/p-token/")) == ("p-token",)
    assert presented_tokens(request()) == ()


@pytest.mark.parametrize("where", [
    {"query": {"token": "new-token-2"}},
    {"headers": {"x-callback-token": "old-token-1"}},
    {"path": "/old-token-1"},
    {"path": "/ci/callback", "query": {"token": "new-token-2"}},  # a gateway path is no token, the query is
])
def test_any_configured_token_in_any_place_is_accepted(where):
    authenticate(request(**where), settings())


def test_missing_token_is_401_and_wrong_token_403():
    with pytest.raises(HttpError) as missing:
        authenticate(request(), settings())
    assert missing.value.status == 401 and "?token=" in missing.value.reason
    with pytest.raises(HttpError) as wrong:
        authenticate(request(query={"token": "new-token-3"}), settings())
    assert wrong.value.status == 403 and "new-token" not in wrong.value.reason


def test_token_comparison_handles_any_text():
    assert not token_accepted(["\ud800", "", "新", "x" * 10000], ["old-token-1"])
    assert token_accepted(["wrong", "old-token-1"], ["new-token-2", "old-token-1"])


def test_redacted_target_masks_every_place_a_token_can_be():
    r = request(path="/ci/callback/old-token-1", query={"token": "new-token-2", "run": "7"})
    assert redacted_target(r) == "/ci/callback/***?run=7&token=***"
    assert redacted_target(request()) == "/"


# --- the allow-lists ----------------------------------------------------------------------

def callback(**kwargs):
    return parse_callback(job_xml(**{"md5s": {"output/a.mp3": "a" * 32}, "names": [], **kwargs}))


def test_allowed_callback_passes():
    check_allowed(callback(), settings(ALLOWED_PREFIXES="output/"))


@pytest.mark.parametrize("kwargs, env, reason", [
    ({"bucket": "other-1250000000"}, {}, "bucket 'other-1250000000' (Input.BucketId) is not in ALLOWED_BUCKETS"),
    ({"md5s": {"secret/a": "a" * 32}}, {"ALLOWED_PREFIXES": "output/"}, "key 'secret/a'"),
])
def test_anything_outside_the_allow_lists_is_403(kwargs, env, reason):
    with pytest.raises(HttpError) as info:
        check_allowed(callback(**kwargs), settings(**env))
    assert info.value.status == 403 and reason in info.value.reason


def test_an_output_bucket_outside_the_list_is_403_even_when_the_input_is_allowed():
    body = job_xml(md5s={"o/a": "a" * 32}, names=[]).replace(
        f"<Bucket>{BUCKET}</Bucket>".encode(), b"<Bucket>other-1250000000</Bucket>")
    with pytest.raises(HttpError, match=r"OutputFile\[0\]\.Bucket"):
        check_allowed(parse_callback(body), settings())


def test_star_allows_every_bucket():
    check_allowed(callback(bucket="other-1250000000"), settings(ALLOWED_BUCKETS="*"))
