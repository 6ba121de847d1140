"""The HTTP edge: both event shapes in, the integrated response out."""
import base64
import json

import pytest

from handlers.intake.http import HttpError, error_response, request_from_event, response


def test_function_url_event():
    event = {"body": "<Response/>", "headers": {"Content-Type": "application/xml", "X-Callback-Token": "t"},
             "httpMethod": "post", "path": "/cb", "queryString": {"token": "abc"}}
    request = request_from_event(event)
    assert (request.method, request.path, request.body) == ("POST", "/cb", b"<Response/>")
    assert request.headers["content-type"] == "application/xml"
    assert request.headers["x-callback-token"] == "t"
    assert request.query == {"token": "abc"}


def test_api_gateway_event_with_base64_body_and_both_query_fields():
    body = "<Response>中文</Response>".encode()
    event = {"requestContext": {"sourceIp": "10.0.0.1", "httpMethod": "POST"}, "httpMethod": "POST",
             "path": "/ci", "headers": {"CONTENT-TYPE": "text/xml"}, "isBase64Encoded": True,
             "body": base64.b64encode(body).decode(), "queryStringParameters": {"token": "from-params"},
             "queryString": {"token": "from-string", "other": ["1", "2"]}}
    request = request_from_event(event)
    assert request.body == body
    assert request.headers == {"content-type": "text/xml"}
    assert request.query == {"token": "from-params", "other": "1"}
    assert request.source_ip == "10.0.0.1"


def test_function_url_caller_address():
    request = request_from_event({"httpMethod": "POST", "headers": {"X-SCF-Remote-Addr": "203.0.113.9"}})
    assert request.source_ip == "203.0.113.9"


def test_bad_base64_is_a_400():
    with pytest.raises(HttpError) as info:
        request_from_event({"httpMethod": "POST", "isBase64Encoded": True, "body": "not base64!"})
    assert info.value.status == 400 and "base64" in info.value.reason


def test_missing_body_and_headers_are_empty():
    request = request_from_event({"httpMethod": "POST"})
    assert (request.body, dict(request.headers), dict(request.query), request.path) == (b"", {}, {}, "/")


def test_integrated_response_shape():
    r = response(503, {"jobs": []}, {"Retry-After": "30"})
    assert r == {"isBase64Encoded": False, "statusCode": 503,
                 "headers": {"Content-Type": "application/json; charset=utf-8", "Retry-After": "30"},
                 "body": '{"jobs":[]}'}
    err = error_response(HttpError(405, "no", {"Allow": "POST"}))
    assert err["statusCode"] == 405 and json.loads(err["body"]) == {"error": "no"}
    assert err["headers"]["Allow"] == "POST"
