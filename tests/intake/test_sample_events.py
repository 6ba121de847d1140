"""events/*.json are whole events, as SCF delivers them, and what `python -m localcloud samples` builds.

Shapes (../shared/DESIGN.md, Tencent's Function URL and API Gateway trigger documentation):
- Function URL, event function: {body, headers, httpMethod, path, queryString}; no
  requestContext, isBase64Encoded, pathParameters, queryStringParameters, headerParameters;
  header names in lower case.
- API Gateway: the same plus requestContext{serviceId, path, httpMethod, requestId, sourceIp,
  stage}, isBase64Encoded, queryStringParameters, headerParameters, pathParameters.
Other triggers' events (timer, CMQ, the async worker) are checked where they are handled.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from handlers.intake.callback import parse_callback
from handlers.intake.http import request_from_event
from localcloud import samples

COMMITTED = samples.HERE
EVENTS = sorted(COMMITTED.glob("*.json"))
HTTP_EVENTS = [path for path in EVENTS if "httpMethod" in json.loads(path.read_text())]
FUNCTION_URL_KEYS = {"body", "headers", "httpMethod", "path", "queryString"}
API_GATEWAY_KEYS = FUNCTION_URL_KEYS | {"requestContext", "isBase64Encoded", "queryStringParameters",
                                        "headerParameters", "pathParameters"}
REQUEST_CONTEXT_KEYS = {"serviceId", "path", "httpMethod", "requestId", "sourceIp", "stage"}


def body_bytes(event: dict) -> bytes:
    return base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()


def test_there_are_samples_of_both_http_shapes():
    shapes = {"requestContext" in json.loads(path.read_text()) for path in HTTP_EVENTS}
    assert shapes == {True, False}


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=lambda p: p.name)
def test_an_http_sample_is_a_whole_event_of_its_trigger(path: Path):
    event = json.loads(path.read_text())
    if "requestContext" in event:
        assert set(event) >= API_GATEWAY_KEYS, f"missing {sorted(API_GATEWAY_KEYS - set(event))}"
        assert set(event["requestContext"]) >= REQUEST_CONTEXT_KEYS
        assert event["requestContext"]["httpMethod"] == event["httpMethod"]
        assert isinstance(event["isBase64Encoded"], bool)
        assert all(isinstance(event[k], dict) for k in ("queryStringParameters", "headerParameters", "pathParameters"))
    else:
        assert set(event) == FUNCTION_URL_KEYS, "a Function URL event has exactly these fields"
        assert all(name == name.lower() for name in event["headers"]), "Function URL header names are lower case"
    assert isinstance(event["body"], str) and event["httpMethod"] == "POST" and event["path"].startswith("/")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in event["headers"].items())
    assert isinstance(event["queryString"], dict)


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=lambda p: p.name)
def test_an_http_sample_is_consistent_and_reaches_the_callback_parser(path: Path):
    event = json.loads(path.read_text())
    headers = {name.lower(): value for name, value in event["headers"].items()}
    body = body_bytes(event)
    if "content-length" in headers:
        assert int(headers["content-length"]) == len(body)
    assert body.lstrip().startswith(b"{" if "json" in headers["content-type"] else b"<")
    request = request_from_event(event)
    assert request.query.get("token") == samples.DEMO_TOKEN  # CI calls the callback URL with the token
    assert request.body == body
    callback = parse_callback(request.body)
    assert callback.jobs_detail or callback.workflow_execution  # TaskFinish, or WorkflowFinish


def test_the_samples_are_what_localcloud_samples_builds(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(samples, "ROOT", tmp_path)
    monkeypatch.setattr(samples, "HERE", tmp_path / "events")
    (tmp_path / "events").mkdir()
    samples.build_events()
    built = sorted((tmp_path / "events").glob("*.json"))
    assert built
    stale = [p.name for p in built if not (COMMITTED / p.name).exists() or
             (COMMITTED / p.name).read_text() != p.read_text()]
    assert not stale, f"run `python -m localcloud samples`: these differ from what it builds: {stale}"
