"""`python -m localcloud serve`: the function behind a local Function URL, as a user runs it."""
from __future__ import annotations

import base64
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from handlers.intake.http import request_from_event
from localcloud.runner import ROOT
from localcloud.serve import event_from_request, http_response

STARTUP_SECONDS = 60
# The server's own defaults must be what the test sees, not settings of the shell running it.
SETTINGS = ("CALLBACK_TOKEN", "ALLOWED_BUCKETS", "ALLOWED_PREFIXES", "ALLOW_UNAUTHENTICATED", "VERIFY_WITH_CI",
            "ACTION_VERIFIED", "ACTION_FAILED", "VERIFY_MODE", "LOG_LEVEL", "COS_ENDPOINT", "DEFAULT_REGION",
            "DISPATCH", "REPORT_PREFIX")


class Served:
    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        command = [sys.executable, "-m", "localcloud", "serve", "--port", "0", "--cos-port", "0"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url, self.bodies = self._started()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _started(self) -> tuple[str, dict[str, Path]]:
        url, bodies, deadline = None, {}, time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if match := re.match(r"function URL: (\S+)", line):
                url = match.group(1)
            if match := re.match(r"  (\S+\.(?:xml|json)) ", line):
                bodies[match.group(1)] = Path(self._folder) / match.group(1)
            if match := re.match(r"sample callbacks, restamped to now, in (\S+)/:", line):
                self._folder = match.group(1)
            if line.startswith("serving;") and url:
                return url, bodies
        self.stop()
        pytest.fail(f"the server did not start: {''.join(self.output)}{self.process.stderr.read() if self.process.stderr else ''}")

    def post(self, name: str, query: str = "?token=demo-token", **kwargs) -> requests.Response:
        path = self.bodies[name]
        content_type = "application/json" if name.endswith(".json") else "application/xml"
        return requests.post(self.url + query, data=path.read_bytes(), headers={"Content-Type": content_type},
                             timeout=30, **kwargs)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.reader.join(timeout=5)  # the last lines it printed
        return status


@pytest.fixture(scope="module")
def served():
    server = Served()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_documented_callback_posted_with_curl_is_verified(served):
    answer = served.post("function-url-task-xml.xml")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    (job,) = answer.json()["jobs"]
    assert job["outcome"] == "verified"
    assert {(o["key"], o["verdict"], o["method"]) for o in job["objects"]} == {
        ("output/audio.mp3", "verified", "etag"), ("output/backgroud.mp3", "verified", "etag")}


def test_every_sample_callback_gets_its_documented_outcome(served):
    outcomes = {}
    for name in served.bodies:
        answer = served.post(name)
        assert answer.status_code == 200, (name, answer.text)
        outcomes[name] = [job["outcome"] for job in answer.json()["jobs"]]
    assert outcomes["function-url-mismatch.xml"] == ["failed"]
    assert outcomes["function-url-multipart.xml"] == ["verified"]
    assert outcomes["function-url-failed-job.xml"] == ["failed-job"]
    assert outcomes["function-url-workflow-json.json"] == ["verified"]


def test_the_function_answers_the_http_errors_itself(served):
    assert served.post("function-url-task-xml.xml", query="").status_code == 401
    assert served.post("function-url-task-xml.xml", query="?token=wrong-token-123").status_code == 403
    answer = requests.get(served.url + "?token=demo-token", timeout=30)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    binary = requests.post(served.url + "?token=demo-token", data=b"\xff\xfe<Response/>", timeout=30)
    assert binary.status_code == 400 and "malformed callback" in binary.json()["error"]


def settings_block(output: list[str]) -> tuple[dict[str, str], list[list[str]]]:
    """The environment and the commands serve prints for `dev.py run` and `dev.py report` in another shell."""
    start = next(i for i, line in enumerate(output) if line.startswith("  export "))
    environment = dict(word.split("=", 1) for word in shlex.split(output[start].strip())[1:])
    commands = [shlex.split(line) for line in output[start + 1:] if line.startswith("  python3 dev.py ")]
    return environment, commands


@pytest.mark.slow
def test_the_settings_serve_prints_run_an_event_file_and_the_report_against_its_emulator():
    """Issue 21, item 2: `dev.py run events/...` with the settings the README named failed three times
    before it worked (the emulator's credentials were only in localcloud/demo.py, the session token was
    required but not named, the COS port was random). serve prints them; with exactly that environment
    (and PATH), the printed commands work."""
    server = Served()
    try:
        environment, commands = settings_block(server.output)
        assert set(environment) == {"COS_ENDPOINT", "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY",
                                    "TENCENTCLOUD_SESSIONTOKEN", "CALLBACK_TOKEN", "ALLOWED_BUCKETS", "DEFAULT_REGION"}
        env = {"PATH": os.environ["PATH"], **environment}
        (run, report) = commands
        assert run[:3] == ["python3", "dev.py", "run"] and report[:3] == ["python3", "dev.py", "report"]
        done = subprocess.run([sys.executable, *run[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        answer = json.loads(done.stdout.split("HTTP 200\n", 1)[1].split("\n\n", 1)[1])
        (job,) = answer["jobs"]
        assert job["outcome"] == "verified"
        assert {(o["key"], o["verdict"]) for o in job["objects"]} == {
            ("output/audio.mp3", "verified"), ("output/backgroud.mp3", "verified")}
        done = subprocess.run([sys.executable, *report[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"^  verified +2$", done.stdout, re.MULTILINE), done.stdout  # the tags the run left
    finally:
        server.stop()


@pytest.mark.slow
def test_sigterm_stops_the_server_and_the_emulator():
    server = Served()
    assert server.stop() == 0
    assert "stopped\n" in server.output
    assert not any(server.bodies[name].exists() for name in server.bodies)  # its temporary files are gone


# --- the mapping, without a server --------------------------------------------------------

def test_a_request_becomes_a_function_url_event_the_function_reads():
    event = event_from_request("post", "/cb/?token=t0ken-123&a=1&a=2&empty=", [("Content-Type", "application/xml"),
                               ("X-Test", "one"), ("x-test", "two")], "<a>é</a>".encode(), "10.1.2.3")
    assert set(event) == {"body", "headers", "httpMethod", "path", "queryString"}
    assert event["body"] == "<a>é</a>" and event["httpMethod"] == "POST" and event["path"] == "/cb/"
    assert event["queryString"] == {"token": "t0ken-123", "a": ["1", "2"], "empty": ""}
    assert event["headers"] == {"content-type": "application/xml", "x-test": "one,two", "x-scf-remote-addr": "10.1.2.3"}
    request = request_from_event(event)
    assert request.query["token"] == "t0ken-123" and request.body == "<a>é</a>".encode()


def test_a_body_that_is_not_text_travels_in_base64():
    event = event_from_request("POST", "/", [], b"\xff\x00<", "127.0.0.1")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00<"
    assert request_from_event(event).body == b"\xff\x00<"


def test_an_integrated_response_becomes_the_http_answer():
    status, headers, body = http_response({"isBase64Encoded": False, "statusCode": 503, "body": '{"jobs":[]}',
                                           "headers": {"Retry-After": "30", "Set-Cookie": ["a=1", "b=2"]}})
    assert (status, body) == (503, b'{"jobs":[]}')
    assert headers == [("Retry-After", "30"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert http_response({"statusCode": 200, "isBase64Encoded": True, "body": "aGk="})[2] == b"hi"
