"""Log lines: one JSON object each, and no known secret in any of them, in any form."""
import json
import logging
from urllib.parse import quote

import pytest

from handlers import log
from tests.conftest import CALLBACK_TOKEN, SECRET_KEY, TOKEN

ODD_SECRET = 'se"cret\\with/odd+chars'


@pytest.fixture
def lines(capsys, app):
    """The app registered its secrets (SecretKey, session token, callback token) at start."""
    log.register_secrets([ODD_SECRET])

    def read() -> list[str]:
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return read


def test_each_line_is_one_json_object_with_the_request_id(lines):
    log.bind_request("req-1")
    log.info("object checked", jobId="j1", bucket="b-1", key="k", verdict="verified", durationMs=1.5)
    (line,) = lines()
    entry = json.loads(line)
    assert {k: entry[k] for k in ("level", "message", "requestId", "jobId", "bucket", "key", "verdict",
                                  "durationMs")} == {"level": "INFO", "message": "object checked",
                                                     "requestId": "req-1", "jobId": "j1", "bucket": "b-1",
                                                     "key": "k", "verdict": "verified", "durationMs": 1.5}


@pytest.mark.parametrize("secret", [SECRET_KEY, TOKEN, CALLBACK_TOKEN, ODD_SECRET])
def test_known_secrets_are_redacted_wherever_they_appear(lines, secret):
    log.warning(f"message {secret}", url=f"https://x/?token={quote(secret, safe='')}", nested={"h": [secret]})
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        log.error("unexpected failure", exc_info=True)
    logged = lines()
    assert len(logged) == 2 and all(json.loads(line) for line in logged)
    text = "\n".join(logged)
    for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe="")):
        assert form not in text
    assert text.count(log.REDACTED) == 4


def test_short_values_are_not_treated_as_secrets(lines):
    log.register_secrets(["ab", "", None])
    log.info("ab cd")
    assert json.loads(lines()[0])["message"] == "ab cd"


def test_the_sdk_logger_writes_through_the_same_formatter(lines):
    sdk = logging.getLogger("qcloud_cos.cos_client")
    sdk.critical("headers: {'x-cos-security-token': '%s'}", TOKEN)
    (line,) = lines()
    entry = json.loads(line)
    assert entry["logger"] == "qcloud_cos.cos_client" and TOKEN not in line and log.REDACTED in line
