"""The function behind a local Function URL: `python3 dev.py serve [--port 9000] [--cos-port 9001]`.

Starts the COS + CI emulator, seeds it as the demo does (the objects of events/objects/, and
every sample callback's job for the function's cross-check with CI), then serves HTTP: each
request becomes a Function URL event for `index.main_handler` and its integrated response
becomes the answer. The sample callbacks, restamped to now, are written to files to post:

    curl -X POST --data-binary @<file printed at start> -H 'Content-Type: application/xml' \\
         'http://127.0.0.1:9000/?token=demo-token'

Settings come from the environment, as in SCF (`ACTION_VERIFIED=tag,move python3 dev.py serve`);
the credentials and COS_ENDPOINT always point at the emulator; CALLBACK_TOKEN, ALLOWED_BUCKETS,
VERIFY_WITH_CI, DEFAULT_REGION and LOG_LEVEL default to the demo's. Invocations run one at a time, as in one
SCF instance. The function logs to stdout as in SCF (JSON lines); this server logs one line
per request to stderr.

It also prints the settings that point `python3 dev.py run events/<file>` and `python3 dev.py report`
in another shell at the same emulator, as one `export` line to paste: its credentials, its session
token (the emulator requires one, as COS does of temporary keys), its address and the demo's token,
bucket and region. The emulator listens on a fixed port (9001, --cos-port) so that the line stays
valid when serve is restarted (the objects and tags do not: they live as long as serve).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localcloud.cos import CosEmulator
from localcloud.runner import ROOT, local_context
from localcloud.serving import LocalHTTPServer, TrackedRequestHandler

Function = Callable[[dict, dict], Any]
MAX_EVENT_BYTES = 6 * 1024 * 1024  # SCF's limit on a synchronous invocation's request
DEFAULT_TIMEOUT = 60  # serverless.yml's `timeout`
DEFAULT_COS_PORT = 9001  # fixed, beside the function URL's 9000: the printed COS_ENDPOINT survives a restart
# What `dev.py run` and `dev.py report` need to reach the emulator as the served function does (README,
# "Sample events"); REPORT_PREFIX too when serve was given one, since the report reads the reports there.
SHARED_SETTINGS = ("COS_ENDPOINT", "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN",
                   "CALLBACK_TOKEN", "ALLOWED_BUCKETS", "DEFAULT_REGION")


def event_from_request(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
                       client_ip: str) -> dict[str, Any]:
    """A Function URL event, as SCF builds it for an event function: {body, headers, httpMethod,
    path, queryString}, header names in lower case, the caller's address in x-scf-remote-addr
    (as in Tencent's example event). A body that is not UTF-8 text travels in base64 with
    isBase64Encoded, the API Gateway convention the function also reads."""
    parts = urlsplit(target)
    query: dict[str, Any] = {}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        query[key] = values[0] if len(values) == 1 else values
    names: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        names[key] = f"{names[key]},{value}" if key in names else value
    names.setdefault("x-scf-remote-addr", client_ip)
    event: dict[str, Any] = {"headers": names, "httpMethod": method.upper(), "path": parts.path or "/",
                             "queryString": query}
    try:
        event["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    return event


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the function's integrated response."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # Not an integrated response: the value itself is the body, as JSON.
        return 200, [("Content-Type", "application/json")], json.dumps(result, ensure_ascii=False).encode()
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        for one in value if isinstance(value, list) else [value]:
            headers.append((str(name), str(one)))
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded") in (True, "true", "True"):
        data = base64.b64decode(body)
    else:
        data = (body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)).encode("utf-8")
    return int(result["statusCode"]), headers, data


class FunctionUrlServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], function: Function, timeout_seconds: int = DEFAULT_TIMEOUT,
                 log: Callable[[str], None] | None = None):
        super().__init__(address, _FunctionUrlRequest)
        self.function = function
        self.timeout_seconds = timeout_seconds
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.invocation = threading.Lock()  # one event at a time, as in one SCF instance

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        with self.invocation:
            try:
                return http_response(self.function(event, local_context(self.timeout_seconds)))
            except Exception as exc:
                traceback.print_exc()
                body = {"errorCode": -1, "errorMessage": f"{type(exc).__name__}: {exc}", "statusCode": 502}
                return 502, [("Content-Type", "application/json")], json.dumps(body).encode()


class _FunctionUrlRequest(TrackedRequestHandler):
    server: FunctionUrlServer
    server_version = "localcloud-function-url"

    def _handle(self) -> None:
        started = time.monotonic()
        body = self._body()
        if body is None:
            status, headers, data = 413, [("Content-Type", "application/json")], json.dumps(
                {"errorMessage": f"the request is larger than {MAX_EVENT_BYTES} bytes"}).encode()
            self.close_connection = True
        else:
            event = event_from_request(self.command, self.path, self.headers.items(), body, self.client_address[0])
            status, headers, data = self.server.invoke(event)
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.server.log(f"{self.command} {self.path.split('?', 1)[0]} -> {status} "
                        f"({len(data)} bytes, {(time.monotonic() - started) * 1000:.0f} ms)")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_EVENT_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _chunked(self) -> bytes | None:
        data = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(data)
            if len(data) + size > MAX_EVENT_BYTES:
                return None
            data += self.rfile.read(size)
            self.rfile.readline()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # _handle logs one line per request


def seed(emulator: CosEmulator, bodies: Path) -> tuple[list[dict], list[tuple[Path, str, str]]]:
    """Upload the sample objects, register every sample callback's job with CI, and write the
    body of each HTTP sample, restamped to now, to a file: (manifest, [(file, content type, what)])."""
    from localcloud.demo import EVENTS, SAMPLES, upload_samples
    from localcloud.samples import ci_jobs, restamp_event

    manifest = upload_samples(emulator)
    written = []
    for name, what in SAMPLES:
        event = restamp_event(json.loads((EVENTS / name).read_text()))
        for bucket, detail in ci_jobs(event):
            emulator.register_job(bucket, detail)
        if "httpMethod" not in event:
            continue  # a timer, queue or worker event: nothing to post
        content_type = next((v for k, v in event["headers"].items() if k.lower() == "content-type"), "application/xml")
        path = bodies / (Path(name).stem + (".json" if "json" in content_type else ".xml"))
        path.write_bytes(http_body(event))
        written.append((path, content_type, what))
    return manifest, written


def http_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def configure(emulator: CosEmulator, manifest: list[dict]) -> None:
    """The function's environment: the caller's settings, the demo's defaults, the emulator's address."""
    from localcloud.demo import SECRET_ID, SECRET_KEY, TOKEN
    from localcloud.samples import DEMO_TOKEN

    defaults = {"CALLBACK_TOKEN": DEMO_TOKEN, "VERIFY_WITH_CI": "true", "LOG_LEVEL": "INFO",
                "ALLOWED_BUCKETS": ",".join(sorted({entry["bucket"] for entry in manifest})),
                "DEFAULT_REGION": manifest[0]["region"]}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ.update({"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                       "TENCENTCLOUD_SESSIONTOKEN": TOKEN, "COS_ENDPOINT": emulator.endpoint})


def settings_block(env: Mapping[str, str], demo_token: str, event: Path, bucket: str, region: str) -> list[str]:
    """The lines to paste into another shell: one `export` of the settings, then a `dev.py run` and a
    `dev.py report` that use them. A CALLBACK_TOKEN of the caller's own is not echoed to the terminal:
    the line exports the other shell's `$CALLBACK_TOKEN` instead."""
    words = []
    for name in (*SHARED_SETTINGS, *(["REPORT_PREFIX"] if env.get("REPORT_PREFIX") else [])):
        value = env[name]
        if name == "CALLBACK_TOKEN" and value != demo_token:
            words.append('CALLBACK_TOKEN="$CALLBACK_TOKEN"')
        else:
            words.append(f"{name}={shlex.quote(value)}")
    return [f"export {' '.join(words)}",
            f"python3 dev.py run {shlex.quote(event.as_posix())}",
            f"python3 dev.py report --bucket {shlex.quote(bucket)} --region {shlex.quote(region)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on; 0 picks a free one (default: 9000)")
    parser.add_argument("--cos-port", type=int, default=DEFAULT_COS_PORT,
                        help=f"the COS emulator's port; 0 picks a free one (default: {DEFAULT_COS_PORT})")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"the invocation's time limit in seconds, as SCF's context gives it (default: {DEFAULT_TIMEOUT})")
    args = parser.parse_args(argv)
    stopped = threading.Event()  # set by Ctrl-C or SIGTERM, whenever they come: no exception mid-way
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    bodies = Path(tempfile.mkdtemp(prefix="ci-callback-verifier-serve-"))
    try:
        status = _serve(args, bodies, stopped)
    finally:
        shutil.rmtree(bodies, ignore_errors=True)
    print("stopped", flush=True)
    return status


def _serve(args: argparse.Namespace, bodies: Path, stopped: threading.Event) -> int:
    from localcloud.demo import EVENTS, SAMPLES, SECRET_ID, SECRET_KEY, TOKEN
    from localcloud.runner import load_handler
    from localcloud.samples import DEMO_TOKEN

    emulator = CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, port=args.cos_port)
    try:
        emulator.start()
    except OSError as exc:
        emulator.stop()  # removes its object folder
        print(f"serve: the COS emulator cannot listen on 127.0.0.1:{args.cos_port}: {exc.strerror or exc} "
              f"(is another serve running? --cos-port 0 picks a free port)", file=sys.stderr)
        return 1
    with emulator:
        manifest, samples = seed(emulator, bodies)
        configure(emulator, manifest)
        try:
            server = FunctionUrlServer((args.host, args.port), load_handler(), args.timeout)
        except OSError as exc:
            print(f"serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                  f"(--port 0 picks a free port)", file=sys.stderr)
            return 1
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="function-url", daemon=True)
        thread.start()
        try:
            token = DEMO_TOKEN if os.environ["CALLBACK_TOKEN"] == DEMO_TOKEN else "$CALLBACK_TOKEN"
            print(f"COS emulator at {emulator.endpoint}: {len(manifest)} sample objects, "
                  f"the jobs of {len(samples)} sample callbacks")
            print(f"function URL: {server.url}  (POST callbacks to {server.url}?token={token})")
            print(f"sample callbacks, restamped to now, in {bodies}/:")
            for path, _, what in samples:
                print(f"  {path.name:<36} {what}")
            path, content_type, _ = samples[0]
            print(f"try:\n  curl -X POST --data-binary @{path} -H 'Content-Type: {content_type}' "
                  f"'{server.url}?token={token}'")
            print("or, from another shell in this folder, an event file or the report against this emulator:")
            for line in settings_block(os.environ, DEMO_TOKEN, (EVENTS / SAMPLES[0][0]).relative_to(ROOT),
                                       manifest[0]["bucket"], manifest[0]["region"]):
                print(f"  {line}")
            print("serving; Ctrl-C stops", flush=True)
            while not stopped.wait(0.5):
                pass
        finally:
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
