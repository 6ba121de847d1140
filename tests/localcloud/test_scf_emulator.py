"""The SCF emulator, exercised through the real tencentcloud-sdk-python over HTTP (no mocks)."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

from localcloud.scf import ScfEmulator

SECRET_ID = "AKIDscf"
SECRET_KEY = "scf-secret"
TOKEN = "scf-session-token"
REGION = "ap-chongqing"
REPO_ROOT = Path(__file__).resolve().parents[2]
KB = 1024


def echo(event, context):
    """A handler importable by path, for the CLI test."""
    return {"event": event, "function": context["function_name"]}


# ------------------------------------------------------------------ helpers


@pytest.fixture
def emulator():
    with ScfEmulator(SECRET_ID, SECRET_KEY) as emu:
        yield emu


def make_client(port: int, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY, token: str | None = None,
                region: str = REGION) -> scf_client.ScfClient:
    http = HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http", reqTimeout=10)
    return scf_client.ScfClient(credential.Credential(secret_id, secret_key, token), region,
                                ClientProfile(httpProfile=http))


@pytest.fixture
def client(emulator):
    return make_client(emulator.port)


def invoke(client, name: str = "fn", payload=None, invocation_type: str | None = None, **fields):
    request = models.InvokeRequest()
    request.FunctionName = name
    request.InvocationType = invocation_type
    if payload is not None:
        request.ClientContext = payload if isinstance(payload, str) else json.dumps(payload)
    for key, value in fields.items():
        setattr(request, key, value)
    return client.Invoke(request)


def api_error(call, *args, **kwargs) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as raised:
        call(*args, **kwargs)
    return raised.value


def tc3_request(port: int, body: bytes, *, secret_key: str = SECRET_KEY, timestamp: int | None = None,
                signed_body: bytes | None = None, scope_date: str | None = None,
                signed_headers: str = "content-type;host", action: str = "Invoke") -> requests.Response:
    """An API 3.0 request signed here, independently of the emulator, from Tencent's documented algorithm."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    date = scope_date or datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    host = f"127.0.0.1:{port}"
    values = {"content-type": "application/json", "host": host, "x-tc-action": action.lower()}
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed_headers.split(";"))
    payload_hash = hashlib.sha256(body if signed_body is None else signed_body).hexdigest()
    canonical = f"POST\n/\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    to_sign = (f"TC3-HMAC-SHA256\n{timestamp}\n{date}/scf/tc3_request\n"
               f"{hashlib.sha256(canonical.encode()).hexdigest()}")

    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    key = sign(sign(sign(("TC3" + secret_key).encode(), date), "scf"), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Host": host, "Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": "2018-04-16",
        "X-TC-Region": REGION, "X-TC-Timestamp": str(timestamp),
        "Authorization": f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/scf/tc3_request, "
                         f"SignedHeaders={signed_headers}, Signature={signature}",
    }
    return requests.post(f"http://{host}/", data=body, headers=headers, timeout=10)


def error_code(response: requests.Response) -> str | None:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()["Response"].get("Error", {}).get("Code")


# ------------------------------------------------------------ signatures


def test_sdk_signed_request_is_accepted_and_logged(emulator, client):
    emulator.register_function("fn", lambda event, context: "pong")
    response = invoke(client)
    assert uuid.UUID(response.RequestId)
    assert response.Result.RetMsg == '"pong"'
    (call,) = emulator.requests
    assert (call.action, call.ok, call.secret_id, call.region) == ("Invoke", True, SECRET_ID, REGION)
    assert call.params == {"FunctionName": "fn"}


def test_wrong_secret_key_is_a_signature_failure(emulator):
    calls = []
    emulator.register_function("fn", lambda event, context: calls.append(event))
    error = api_error(invoke, make_client(emulator.port, secret_key="not-the-key"))
    assert error.code == "AuthFailure.SignatureFailure"
    assert uuid.UUID(error.requestId)
    assert calls == [] and emulator.invocations == []
    assert [(c.ok, c.error_code) for c in emulator.requests] == [(False, "AuthFailure.SignatureFailure")]


def test_unknown_secret_id(emulator):
    error = api_error(invoke, make_client(emulator.port, secret_id="AKIDsomeoneelse"))
    assert error.code == "AuthFailure.SecretIdNotFound"
    assert emulator.requests[-1].secret_id == "AKIDsomeoneelse"


@pytest.mark.parametrize("offset", [-600, +600])
def test_timestamp_more_than_five_minutes_off_is_expired(emulator, client, monkeypatch, offset):
    emulator.register_function("fn", lambda event, context: None)
    skewed = types.SimpleNamespace(time=lambda: time.time() + offset)
    monkeypatch.setattr(abstract_client, "time", skewed)  # the SDK signs with this clock
    assert api_error(invoke, client).code == "AuthFailure.SignatureExpire"
    assert emulator.invocations == []


def test_independently_signed_request_and_its_tamperings(emulator):
    emulator.register_function("fn", lambda event, context: event)
    body = json.dumps({"FunctionName": "fn", "ClientContext": '{"n": 1}'}).encode()
    assert error_code(tc3_request(emulator.port, body)) is None
    assert error_code(tc3_request(emulator.port, body, timestamp=int(time.time()) - 240)) is None
    signed_10_minutes_ago = tc3_request(emulator.port, body, timestamp=int(time.time()) - 600)
    assert error_code(signed_10_minutes_ago) == "AuthFailure.SignatureExpire"
    tampered = tc3_request(emulator.port, body, signed_body=body.replace(b"1", b"2"))
    assert error_code(tampered) == "AuthFailure.SignatureFailure"
    assert error_code(tc3_request(emulator.port, body, scope_date="2001-01-01")) == "AuthFailure.SignatureFailure"
    assert error_code(tc3_request(emulator.port, body, signed_headers="content-type")) == \
        "AuthFailure.InvalidAuthorization"
    # Header values are canonicalised lower-cased, as Tencent documents: X-TC-Action may be signed too.
    assert error_code(tc3_request(emulator.port, body, signed_headers="content-type;host;x-tc-action")) is None
    unsigned = requests.post(f"{emulator.endpoint}/", data=body, timeout=10,
                             headers={"Content-Type": "application/json", "X-TC-Action": "Invoke"})
    assert error_code(unsigned) == "AuthFailure.InvalidAuthorization"
    assert [i.payload for i in emulator.invocations] == [{"n": 1}] * 3


def test_session_token_is_required_when_configured():
    with ScfEmulator(SECRET_ID, SECRET_KEY, token=TOKEN) as emu:
        emu.register_function("fn", lambda event, context: "ok")
        assert api_error(invoke, make_client(emu.port)).code == "AuthFailure.TokenFailure"
        assert api_error(invoke, make_client(emu.port, token="stale")).code == "AuthFailure.TokenFailure"
        assert invoke(make_client(emu.port, token=TOKEN)).Result.RetMsg == '"ok"'


# ------------------------------------------------------------ async invoke


def test_event_invoke_answers_before_the_handler_finishes(emulator, client):
    started, release, seen = threading.Event(), threading.Event(), []

    def handler(event, context):
        started.set()
        assert release.wait(10)
        seen.append((event, context))
        return {"handled": event["JobId"]}

    emulator.register_function("fn", handler)
    payload = {"JobId": "j1", "Nested": {"List": [1, "二", None]}, "Text": "x" * 1000}
    response = invoke(client, payload=payload, invocation_type="Event")

    result = response.Result
    assert uuid.UUID(result.FunctionRequestId) and result.FunctionRequestId != response.RequestId
    assert (result.InvokeResult, result.RetMsg, result.ErrMsg) == (0, "", "")
    assert started.wait(5)
    running = emulator.invocation(result.FunctionRequestId)
    assert (running.status, running.attempts, running.finished_at) == ("running", 1, None)
    assert seen == []  # the API answered while the handler was still blocked

    release.set()
    emulator.wait_idle()
    done = emulator.invocation(result.FunctionRequestId)
    assert (done.status, done.attempts, done.result, done.error) == ("succeeded", 1, {"handled": "j1"}, None)
    assert done.invocation_type == "Event" and done.payload == payload
    assert done.queued_at <= done.started_at <= done.finished_at
    assert seen[0][0] == payload


def test_handler_context_is_scf_shaped(emulator, client):
    contexts = []
    emulator.register_function("fn", lambda event, context: contexts.append(context), namespace="prod",
                               qualifier="3", memory_mb=512, timeout=30, environment={"A": "1", "B": "x=y"})
    response = invoke(client, payload={}, invocation_type="Event", Namespace="prod", Qualifier="3")
    emulator.wait_idle()
    assert contexts == [{
        "request_id": response.Result.FunctionRequestId,
        "function_name": "fn",
        "function_version": "3",
        "namespace": "prod",
        "memory_limit_in_mb": 512,
        "time_limit_in_ms": 30000,
        "environ": "A=1;B=x=y",
        "tencentcloud_region": REGION,
    }]


def test_failing_handler_is_retried_then_dead_lettered(emulator, client):
    request_ids = []

    def handler(event, context):
        request_ids.append(context["request_id"])
        raise ValueError(f"boom {len(request_ids)}")

    emulator.register_function("fn", handler, retries=2, retry_delay=0.01)
    response = invoke(client, payload={"k": "v"}, invocation_type="Event")
    assert response.Result.InvokeResult == 0  # failures never reach the asynchronous caller
    emulator.wait_idle()
    (record,) = emulator.invocations
    assert (record.status, record.attempts) == ("dead-lettered", 3)
    assert "ValueError: boom 3" in record.error and "Traceback" in record.error
    assert request_ids == [response.Result.FunctionRequestId] * 3  # retries keep the request id


def test_retry_that_succeeds_ends_the_invocation(emulator, client):
    attempts = []

    def flaky(event, context):
        attempts.append(event)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return "second time lucky"

    emulator.register_function("fn", flaky, retries=2, retry_delay=0.01)
    invoke(client, payload={"n": 1}, invocation_type="Event")
    emulator.wait_idle()
    (record,) = emulator.invocations
    assert (record.status, record.attempts, record.result, record.error) == ("succeeded", 2, "second time lucky", None)
    assert attempts == [{"n": 1}, {"n": 1}]


def test_no_retries_and_a_timeout(emulator, client):
    emulator.register_function("slow", lambda event, context: time.sleep(0.05), retries=0, timeout=0.01)
    invoke(client, "slow", invocation_type="Event")
    emulator.wait_idle()
    (record,) = emulator.invocations
    assert (record.status, record.attempts) == ("dead-lettered", 1)
    assert "timed out" in record.error


def test_wait_idle_times_out_while_a_handler_runs(emulator, client):
    release = threading.Event()
    emulator.register_function("fn", lambda event, context: release.wait(10))
    invoke(client, invocation_type="Event")
    with pytest.raises(TimeoutError, match="fn/"):
        emulator.wait_idle(timeout=0.1)
    release.set()
    emulator.wait_idle()


# ------------------------------------------------------------- sync invoke


def test_request_response_returns_the_result(emulator, client):
    emulator.register_function("fn", lambda event, context: {"sum": sum(event["numbers"]), "ok": True})
    response = invoke(client, payload={"numbers": [1, 2, 3]})  # RequestResponse is the default
    result = response.Result
    assert json.loads(result.RetMsg) == {"sum": 6, "ok": True}
    assert (result.InvokeResult, result.ErrMsg, result.Log) == (0, "", "")
    assert result.Duration >= 0 and result.BillDuration >= 1
    (record,) = emulator.invocations
    assert (record.invocation_type, record.status, record.attempts) == ("RequestResponse", "succeeded", 1)
    assert record.request_id == result.FunctionRequestId
    explicit = invoke(client, payload={"numbers": [4]}, invocation_type="RequestResponse")
    assert json.loads(explicit.Result.RetMsg)["sum"] == 4


def test_request_response_failure_is_reported_not_retried(emulator, client):
    calls = []

    def broken(event, context):
        calls.append(event)
        raise KeyError("Bucket")

    emulator.register_function("fn", broken, retries=2)
    result = invoke(client, payload={}).Result
    assert result.InvokeResult == 1
    document = json.loads(result.ErrMsg)
    assert document["errorMessage"] == "KeyError: 'Bucket'"
    assert document["requestId"] == result.FunctionRequestId and "Traceback" in document["stackTrace"]
    assert json.loads(result.RetMsg) == document
    assert len(calls) == 1
    assert emulator.invocations[0].status == "failed"


def test_default_alias_reaches_latest(emulator, client):
    emulator.register_function("fn", lambda event, context: context["function_version"])
    assert invoke(client, Qualifier="$DEFAULT").Result.RetMsg == '"$LATEST"'


# ----------------------------------------------------------------- errors


def test_unknown_function_qualifier_namespace_and_region(emulator, client):
    emulator.register_function("fn", lambda event, context: None)
    assert api_error(invoke, client, "nope").code == "ResourceNotFound.Function"
    assert api_error(invoke, client, "fn", Namespace="other").code == "ResourceNotFound.Function"
    assert api_error(invoke, client, "fn", Qualifier="7").code == "ResourceNotFound.Qualifier"
    elsewhere = make_client(emulator.port, region="ap-guangzhou")
    assert api_error(invoke, elsewhere, "fn").code == "ResourceNotFound.Function"
    assert emulator.invocations == []


def test_event_payload_limit_is_128_kb(emulator, client):
    emulator.register_function("fn", lambda event, context: len(event))

    def payload_of(size: int) -> str:
        return json.dumps("x" * (size - 2))  # the quotes make up the rest

    invoke(client, payload=payload_of(128 * KB), invocation_type="Event")
    error = api_error(invoke, client, payload=payload_of(128 * KB + 1), invocation_type="Event")
    assert error.code == "InvalidParameterValue.ClientContext"
    assert json.loads(invoke(client, payload=payload_of(200 * KB)).Result.RetMsg) == 200 * KB - 2
    emulator.wait_idle()
    assert [r.invocation_type for r in emulator.invocations] == ["Event", "RequestResponse"]


@pytest.mark.slow
def test_invoke_is_refused_past_its_rate(emulator, client):
    """SCF's quota for the Invoke API is 100 requests a second; past it, API 3.0's RequestLimitExceeded
    (the sweep's fan-out paces itself). Lowered here so that a few calls within a second reach it."""
    assert emulator._services.api.invokes_per_second == 100
    emulator._services.api.invokes_per_second = 5
    emulator.register_function("fn", lambda event, context: None)
    codes = []
    started = time.monotonic()
    for _ in range(8):
        try:
            invoke(client, payload={}, invocation_type="Event")
            codes.append("ok")
        except TencentCloudSDKException as exc:
            codes.append(exc.code)
    assert time.monotonic() - started < 1.0
    assert codes == ["ok"] * 5 + ["RequestLimitExceeded"] * 3
    time.sleep(1.0)
    invoke(client, payload={}, invocation_type="Event")  # a second later, taken again
    emulator.wait_idle()
    assert len(emulator.invocations) == 6


def test_invalid_parameters(emulator, client):
    emulator.register_function("fn", lambda event, context: None)
    assert api_error(invoke, client, invocation_type="Later").code == "InvalidParameterValue"
    assert api_error(invoke, client, payload="{not json").code == "InvalidParameterValue.Param"
    assert api_error(invoke, client, "1-bad-name").code == "InvalidParameter.FunctionName"
    assert api_error(client.call_json, "Invoke", {"Namespace": "default"}).code == "MissingParameter"
    assert api_error(client.call_json, "Invoke", {"FunctionName": "fn", "Payload": "{}"}).code == "UnknownParameter"
    assert api_error(client.call_json, "Invoke", {"FunctionName": "fn", "ClientContext": {}}).code == \
        "InvalidParameter"
    assert api_error(client.call_json, "ListFunctions", {}).code == "InvalidAction"
    assert emulator.invocations == []


def test_non_json_post_is_refused(emulator):
    response = requests.get(f"{emulator.endpoint}/?Action=Invoke", timeout=10)
    assert error_code(response) == "UnsupportedOperation"


# -------------------------------------------------------------- lifecycle


def test_clear_keeps_unfinished_invocations(emulator, client):
    release = threading.Event()
    emulator.register_function("fast", lambda event, context: None)
    emulator.register_function("slow", lambda event, context: release.wait(10))
    invoke(client, "fast")
    invoke(client, "slow", invocation_type="Event")
    emulator.clear()
    assert emulator.requests == []
    assert [r.function_name for r in emulator.invocations] == ["slow"]
    release.set()
    emulator.wait_idle()
    assert emulator.invocations[0].status == "succeeded"


def test_stopped_emulator_refuses_connections():
    emu = ScfEmulator(SECRET_ID, SECRET_KEY).start()
    emu.register_function("fn", lambda event, context: None)
    client = make_client(emu.port)
    invoke(client)  # leaves a kept-alive connection
    emu.stop()
    assert api_error(invoke, client).code == "ClientNetworkError"


def test_cli_serves_until_sigterm():
    command = [sys.executable, "-m", "localcloud.scf", "--host", "127.0.0.1", "--port", "0",
               "--secret-id", "AKIDcli", "--secret-key", "cli-secret",
               "--function", "echo=tests.localcloud.test_scf_emulator:echo"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"SCF emulator listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        client = make_client(int(match[1]), secret_id="AKIDcli", secret_key="cli-secret")
        result = invoke(client, "echo", payload={"a": 1}).Result
        assert json.loads(result.RetMsg) == {"event": {"a": 1}, "function": "echo"}
        assert api_error(invoke, client, "missing").code == "ResourceNotFound.Function"
        assert api_error(invoke, make_client(int(match[1]))).code == "AuthFailure.SecretIdNotFound"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
