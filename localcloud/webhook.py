"""A local webhook receiver: records every request and checks its signature, for the tests and the demo.

It plays the downstream system (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature`) or a group robot (DingTalk's `timestamp`/`sign` query, Feishu's body
`timestamp`/`sign`), and answers as told: a status per request in turn, a robot's
`{"errcode": 0}`, or nothing at all (`hang`), or slowly (`trickle`: the body, `trickle_head`:
the status line and headers, a byte at a time) to try a sender's deadline.

The verifiers are written from the specifications, apart from the function's own code, so a
test that passes checks the function against the documents, not against itself.

    python -m localcloud.webhook --port 9100 --secret whsec_...   # prints what it receives
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from localcloud.serving import BackgroundServer, LocalHTTPServer, TrackedRequestHandler, serve_until_signalled

TOLERANCE_SECONDS = 300  # the spec's suggestion: refuse a timestamp five minutes away


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    signature: str  # "valid", "invalid: why", or "unsigned" (no secret to check against)

    def json(self) -> object:
        return json.loads(self.body)


# --- verifiers (from the specifications) ---------------------------------------------------

def verify_standard_webhook(secret: str, headers: Mapping[str, str], body: bytes,
                            now: float | None = None) -> str:
    """'' when the request carries a valid Standard Webhooks signature, else why not."""
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in lowered]
    if missing:
        return f"missing {', '.join(missing)}"
    msg_id, stamp = lowered["webhook-id"], lowered["webhook-timestamp"]
    if not stamp.isdigit():
        return "webhook-timestamp is not an integer"
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE_SECONDS:
        return "webhook-timestamp is too far from now"
    if not secret.startswith("whsec_"):
        return "the receiver's secret is not whsec_<base64>"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for signature in lowered["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return ""
    return "no v1 signature matches"


def verify_dingtalk(secret: str, query: Mapping[str, str], now: float | None = None) -> str:
    stamp, sign = query.get("timestamp", ""), query.get("sign", "")
    if not stamp.isdigit() or not sign:
        return "no timestamp and sign in the query"
    if abs((time.time() if now is None else now) * 1000 - int(stamp)) > 3600 * 1000:  # DingTalk: within an hour
        return "timestamp is more than an hour away"
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    return "" if hmac.compare_digest(base64.b64encode(digest).decode(), sign) else "sign does not match"


def verify_feishu(secret: str, body: bytes, now: float | None = None) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return "the body is not JSON"
    stamp, sign = str(document.get("timestamp", "")), str(document.get("sign", ""))
    if not stamp.isdigit() or not sign:
        return "no timestamp and sign in the body"
    if abs((time.time() if now is None else now) - int(stamp)) > 3600:  # Feishu: within an hour
        return "timestamp is more than an hour away"
    digest = hmac.new(f"{stamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return "" if hmac.compare_digest(base64.b64encode(digest).decode(), sign) else "sign does not match"


# --- the receiver ------------------------------------------------------------------------------

@dataclass
class Behaviour:
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 200
    hang: bool = False  # answer nothing until stopped
    body: bytes = b'{"errcode":0,"errmsg":"ok"}'
    trickle: float = 0.0  # seconds between the body's bytes: a slow link or proxy, each read answered in time
    gzip: bool = False  # Content-Encoding: gzip, as a server may answer a client that offers it
    trickle_head: float = 0.0  # seconds between the bytes of the status line and headers (serving.py)


class WebhookReceiver(BackgroundServer):
    """`kind` says which signature to check: `json` (Standard Webhooks), `dingtalk`, `feishu`,
    or `wecom` (nothing is signed)."""

    _label = "Webhook receiver"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, secret: str = "", kind: str = "json",
                 echo: bool = False):
        super().__init__((host, port))
        self.secret = secret
        self.kind = kind
        self.echo = echo
        self.behaviour = Behaviour()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def answer(self, *statuses: int, hang: bool = False, body: bytes | None = None, trickle: float = 0.0,
               gzip: bool = False, trickle_head: float = 0.0) -> None:
        self.behaviour = Behaviour(list(statuses), hang, self.behaviour.body if body is None else body, trickle,
                                   gzip, trickle_head)

    def url(self, path: str = "/hook") -> str:
        return self.endpoint + path

    def stop(self) -> None:
        self._released.set()  # a hanging handler lets go, so that the server can stop
        super().stop()

    def _check(self, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> str:
        if not self.secret:
            return "unsigned"
        if self.kind == "json":
            why = verify_standard_webhook(self.secret, headers, body)
        elif self.kind == "dingtalk":
            why = verify_dingtalk(self.secret, query)
        elif self.kind == "feishu":
            why = verify_feishu(self.secret, body)
        else:
            return "unsigned"
        return "valid" if not why else f"invalid: {why}"

    def _record(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Received:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        received = Received(method, parts.path, query, {k.lower(): v for k, v in headers.items()}, body,
                            self._check(query, headers, body))
        with self._lock:
            self._received.append(received)
        if self.echo:
            print(f"{method} {parts.path}  signature: {received.signature}", flush=True)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
                if name in received.headers:
                    print(f"  {name}: {received.headers[name]}", flush=True)
            print("  " + body.decode("utf-8", "replace"), flush=True)
        return received

    def _next(self) -> tuple[int, Behaviour]:
        with self._lock:
            behaviour = self.behaviour
            status = behaviour.statuses.pop(0) if behaviour.statuses else 200
        return status, behaviour

    def _new_server(self) -> LocalHTTPServer:
        receiver = self
        self._released.clear()

        class Handler(TrackedRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._record("POST", self.path, dict(self.headers.items()), body)
                status, behaviour = receiver._next()
                if behaviour.hang:
                    receiver._released.wait(600)
                    self.close_connection = True
                    return
                answer = gzip.compress(behaviour.body) if behaviour.gzip else behaviour.body
                self.head_pause = behaviour.trickle_head
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if behaviour.gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if not behaviour.trickle:
                    self.wfile.write(answer)
                    return
                for i in range(len(answer)):
                    self.wfile.write(answer[i:i + 1])
                    self.wfile.flush()
                    if receiver._released.wait(behaviour.trickle):
                        return

            def log_message(self, format: str, *args: object) -> None:
                pass

        return LocalHTTPServer(self._address, Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--secret", default="", help="whsec_... (json), or the robot's signing secret")
    parser.add_argument("--kind", default="json", choices=("json", "dingtalk", "feishu", "wecom"))
    args = parser.parse_args(argv)
    serve_until_signalled(WebhookReceiver(args.host, args.port, args.secret, args.kind, echo=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
