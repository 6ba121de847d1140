"""Notifications (NOTIFY_URL): one message per job whose result NOTIFY_ON names, per URL.

Pure message building per format, a small sender, and "already sent" kept in COS:

- `wecom`: WeCom group robot, markdown message
  (https://developer.work.weixin.qq.com/document/path/91770: `{"msgtype": "markdown",
  "markdown": {"content": ...}}`, content at most 4096 bytes; the `key` in the URL is the credential,
  nothing is signed).
- `dingtalk`: DingTalk custom robot, markdown message, with the optional signing secret
  (https://open.dingtalk.com/document/robots/customize-robot-security-settings: `timestamp`
  in milliseconds and `sign` = urlencode(base64(HMAC-SHA256(key=secret, "timestamp\\nsecret")))
  as query parameters; https://open.dingtalk.com/document/robots/custom-robot-access for the
  `{"msgtype": "markdown", "markdown": {"title", "text"}}` body).
- `feishu`: Feishu/Lark custom bot, rich-text `post` message, with its signature
  (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot: `timestamp` in seconds
  and `sign` = base64(HMAC-SHA256(key="timestamp\\nsecret", message="")) in the body; body ≤ 20 KB).
- `json`: Standard Webhooks
  (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
  headers `webhook-id`, `webhook-timestamp` (unix seconds), `webhook-signature: v1,<base64
  HMAC-SHA256 of "id.timestamp.body">` keyed with the bytes of `whsec_<base64>`; the body is
  `{"type", "timestamp", "data"}`. The id is derived from the job and the problems the message
  announces, so it stays the same across retries and replays: a receiver that keeps the ids it
  saw drops any duplicate.

Each problem (an object and its verdict, or the job's outcome when NOTIFY_ON names it) is
announced once per URL: a message names only the problems not announced to that URL before (a
FileHashCode callback's new mismatch; not the missing output the media job's callback announced).
What was announced is one record per job, `<REPORT_PREFIX or .ci-callback-verifier/>notified/<JobId>.json`
in the job's output bucket: a list of the messages sent (URL hash, host, webhook-id, problems), read
once per invocation, whatever the number of objects and URLs. COS has no create-if-absent write
(../shared/DESIGN.md), so windows remain: two deliveries running at the same moment both find a
problem unannounced and both send it; so does a replay after an invocation that sent a message and
was cut off (or could not write the record) before it was written; and two invocations that record
messages at the same moment can overwrite each other (each reads right before its write and reads
back after it, as the audit reports do: what remains is both writes within one read-to-write gap),
so a later replay announces the lost one again. The webhook-id closes these for receivers that
dedupe on it whenever the duplicate names the same problems.

A notification that fails never changes a verdict or the status code: it is logged at ERROR,
counted in `job processed`, and tried again by the next replay (nothing was recorded).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

import requests
import urllib3

from handlers import exchange, log
from handlers.config import Settings, notify_format_of, webhook_key
from handlers.deadline import MIN_ATTEMPT_SECONDS, Deadline, retrying
from handlers.errors import StorageError, TransientError
from handlers.intake.models import JobResult, ObjectResult, Outcome, OutputObject
from handlers.operations.audit import location_of
from handlers.storage.records import STATE_PREFIX

ATTEMPT_SECONDS = 5.0  # one delivery attempt waits at most this long (less when the invocation has less)
MAX_ANSWER_BYTES = 64 * 1024  # a robot answers a small JSON object; the rest is never read
RESERVE_SECONDS = 1.5  # kept for the audit reports and the response after the notifications
MAX_OBJECTS_LISTED = 20
MAX_ROBOT_TEXT = 3500  # WeCom's markdown content is limited to 4096 bytes; keep well inside
EVENT_TYPE = "ci.verification"
USER_AGENT = "ci-callback-verifier"


# --- what a message says (pure) -----------------------------------------------------------

@dataclass(frozen=True)
class AffectedObject:
    key: str
    verdict: str
    reason: str
    moved_to: str  # "" when the object stayed where it was
    problem: str = ""  # what it is announced for: its verdict, or `error` (a failed action); "" = verdict


# A problem a message announces: (key, verdict or `error`) for an object, ("", outcome) for the job's outcome.
Problem = tuple[str, str]


@dataclass(frozen=True)
class Notice:
    job_id: str
    job_type: str  # CI's Tag: VoiceSeparate, Transcode, ...
    state: str
    outcome: str
    bucket: str
    region: str
    code: str  # a failed job's Code and Message
    message: str
    objects: tuple[AffectedObject, ...]
    counts: Mapping[str, int]
    request_id: str
    outcome_named: bool = False  # NOTIFY_ON names the outcome itself: it is a problem to announce


def problems(notice: Notice) -> frozenset[Problem]:
    named = {(o.key, o.problem or o.verdict) for o in notice.objects}
    return frozenset(named | {("", notice.outcome)} if notice.outcome_named else named)


def narrowed(notice: Notice, announced: frozenset[Problem]) -> Notice | None:
    """The message about what `announced` lacks (pure), or None when every problem was announced."""
    if problems(notice) <= announced:
        return None
    return replace(notice, objects=tuple(o for o in notice.objects if (o.key, o.problem or o.verdict) not in announced),
                   outcome_named=notice.outcome_named and ("", notice.outcome) not in announced)


def triggers(result: JobResult, notify_on: Iterable[str]) -> set[str]:
    """The NOTIFY_ON entries the result matches: its outcome, the verdicts of its objects."""
    present = {result.outcome.value} | {o.check.verdict.value for o in result.objects}
    if any(o.error for o in result.objects):
        present.add("error")  # a tag or move that failed: the object needs another try, like an error
    return present & set(notify_on)


def notice_of(result: JobResult, notify_on: Iterable[str], request_id: str) -> Notice | None:
    """The message for a job, or None when NOTIFY_ON names nothing in its result."""
    matched = triggers(result, notify_on)
    if not matched:
        return None
    job = result.job
    affected = tuple(_affected(o, "" if o.check.verdict.value in matched else "error") for o in result.objects
                     if o.check.verdict.value in matched or (o.error and "error" in matched))
    counts: dict[str, int] = {}
    for o in result.objects:
        counts[o.check.verdict.value] = counts.get(o.check.verdict.value, 0) + 1
    where = location_of(job, "")
    failed = result.outcome is Outcome.FAILED_JOB
    return Notice(job.job_id, job.tag, job.state, result.outcome.value,
                  where.bucket if where else "", where.region if where else "",
                  job.code if failed else "", job.message if failed else "", affected, counts, request_id,
                  result.outcome.value in matched)


def _affected(result: ObjectResult, problem: str) -> AffectedObject:
    check = result.check
    reason = "; ".join(r for r in (check.reason, *result.notes, result.error) if r)
    moved = next((a.split(":", 1)[1] for a in result.actions if a.startswith("moved:")), "")
    return AffectedObject(check.target.key, check.verdict.value, reason, moved, problem)


# --- what comes from outside is shown as text (pure) ----------------------------------------
# A key, a reason, CI's Code and Message, even a job id or a state, come from a callback: in a
# robot's markdown each is shown as the text it is, never as markup (a live link in the team's
# chat, a colour, an @all). Neither robot documents an escape, so the text is made safe for a
# CommonMark renderer (where it shows exactly as it is) and for a lax one that ignores backslashes
# (where it may show a backslash, but no markup can form):
# - line breaks and the other control, separator and bidirectional-override characters become a
#   space: nothing from outside starts a line, so no heading, quote, list or code block;
# - `<` becomes `&lt;` (and `&` before what reads as a character reference `&amp;`): no HTML,
#   no <font>, no autolink, no WeCom <@userid> mention, whoever parses the tags;
# - \ ` * ~ [ ] # | are backslash-escaped, and `(` right after `]`: no code span, emphasis,
#   strikethrough, link or image, and `](`, which every link needs, never occurs even for a
#   renderer that ignores the backslashes;
# - `_` is escaped unless it stands between two letters or digits (out/my_file.mp3 stays as it
#   is: CommonMark never takes such an underscore for emphasis).
# Such text never goes where a block begins (markdown() puts something of its own first).
# A bare URL stays a URL: chat clients link those in plain text too, showing where they lead.
_FOLDED = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPED = frozenset("\\`*~[]#|")
_REFERENCE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]*);")
_HALF_REFERENCE = re.compile(r"&#?[A-Za-z0-9]*$")

Text = Callable[[str], str]


def one_line(text: str) -> str:
    return _FOLDED.sub(" ", text)


def md_inline(text: str) -> str:
    """`text` as markdown inline content that shows as that text (the rules above)."""
    text = one_line(text)
    out = []
    for i, char in enumerate(text):
        if char in _ESCAPED or (char == "(" and text[i - 1:i] == "]"):
            out.append("\\" + char)
        elif char == "_" and not (text[i - 1:i].isalnum() and text[i + 1:i + 2].isalnum()):
            out.append("\\_")
        elif char == "<":
            out.append("&lt;")
        elif char == "&" and _REFERENCE.match(text, i):
            out.append("&amp;")
        else:
            out.append(char)
    return "".join(out)


def headline(notice: Notice, text: Text = one_line) -> str:
    """One line: the DingTalk and Feishu title as it is, markdown's heading with text=md_inline."""
    if notice.outcome == "failed-job":
        return f"CI job {text(notice.job_id)} {text(notice.state or 'failed')}"
    problems = ", ".join(f"{n} {text(v)}" for v, n in sorted(notice.counts.items()) if v != "verified" and n)
    return f"CI outputs of job {text(notice.job_id)}: {problems or text(notice.outcome)}"


def summary_lines(notice: Notice, text: Text = one_line) -> list[str]:
    lines = [f"Job: {text(notice.job_id)} ({text(notice.job_type or 'unknown type')}, {text(notice.state)}), "
             f"outcome {text(notice.outcome)}",
             f"Bucket: {text(notice.bucket or '(unknown)')}" + (f" ({text(notice.region)})" if notice.region else "")]
    if notice.code or notice.message:
        lines.append(f"CI says: {text(notice.code)} {text(notice.message)}".rstrip())
    return lines


def object_line(obj: AffectedObject) -> str:
    line = f"{one_line(obj.key)}: {one_line(obj.verdict)}"
    if obj.reason:
        line += f" ({one_line(obj.reason)})"
    if obj.moved_to:
        line += f"; moved to {one_line(obj.moved_to)}"
    return line


def _listed(notice: Notice) -> tuple[list[AffectedObject], int]:
    shown = list(notice.objects[:MAX_OBJECTS_LISTED])
    return shown, len(notice.objects) - len(shown)


def markdown(notice: Notice) -> str:
    """The message as the robots' markdown subset: a heading, quotes, a list, bold. Each line
    begins with markup of ours, so nothing from outside stands where a block could begin."""
    shown, more = _listed(notice)
    lines = [f"### {headline(notice, md_inline)}", *(f"> {line}" for line in summary_lines(notice, md_inline)), ""]
    lines += [f"- **{md_inline(o.verdict)}**: {md_inline(o.key)}" + (f" ({md_inline(o.reason)})" if o.reason else "")
              + (f"; moved to {md_inline(o.moved_to)}" if o.moved_to else "") for o in shown]
    if more:
        lines.append(f"- … and {more} more (see the function's log)")
    lines.append(f"\nRequest id: {md_inline(notice.request_id or '-')}")
    return _clip("\n".join(lines))


def plain_lines(notice: Notice) -> list[str]:
    """The message as lines of text (Feishu's post: each a `text` element, which Feishu shows as it is)."""
    shown, more = _listed(notice)
    lines = [*summary_lines(notice), *(object_line(o) for o in shown)]
    if more:
        lines.append(f"… and {more} more (see the function's log)")
    lines.append(f"Request id: {one_line(notice.request_id or '-')}")
    return lines


def _clip(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= MAX_ROBOT_TEXT:
        return text
    cut = _HALF_REFERENCE.sub("", raw[:MAX_ROBOT_TEXT].decode("utf-8", "ignore"))
    if (len(cut) - len(cut.rstrip("\\"))) % 2:  # a backslash whose character was cut off
        cut = cut[:-1]
    return cut + "\n…"


def event_payload(notice: Notice, occurred: float) -> dict[str, Any]:
    """The Standard Webhooks body: type, timestamp, data."""
    return {
        "type": f"{EVENT_TYPE}.{notice.outcome}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(occurred)),
        "data": {
            "jobId": notice.job_id, "tag": notice.job_type, "state": notice.state, "outcome": notice.outcome,
            "bucket": notice.bucket, "region": notice.region,
            **({"code": notice.code, "message": notice.message} if notice.code or notice.message else {}),
            "counts": dict(notice.counts),
            "objects": [{"key": o.key, "verdict": o.verdict, "reason": o.reason,
                         **({"movedTo": o.moved_to} if o.moved_to else {})} for o in notice.objects],
            "requestId": notice.request_id,
        },
    }


def message_id(notice: Notice) -> str:
    """The same for every attempt and replay of the message announcing these problems of this job:
    a FileHashCode callback that finds a new problem in the job is a new message."""
    named = sorted(f"{key}\n{what}" for key, what in problems(notice))
    digest = hashlib.sha256("\n".join((notice.job_id, *named)).encode()).hexdigest()
    return f"msg_{digest[:32]}"


# --- signing (pure) -----------------------------------------------------------------------

def standard_webhooks_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(webhook_key(secret), signed, hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256 keyed with the secret, of "timestamp\\nsecret"), before url-encoding."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256 keyed with "timestamp\\nsecret", of an empty message)."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes


def build_request(notice: Notice, url: str, fmt: str, secret: str, now: float) -> Request:
    """The HTTP request that delivers `notice` to `url` in format `fmt` (pure: `now` is given)."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    if fmt == "wecom":
        body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": markdown(notice)}}
    elif fmt == "dingtalk":
        body = {"msgtype": "markdown", "markdown": {"title": headline(notice)[:64], "text": markdown(notice)}}
        if secret:
            stamp = int(now * 1000)
            url = _with_query(url, {"timestamp": str(stamp), "sign": dingtalk_sign(secret, stamp)})
    elif fmt == "feishu":
        rows = [[{"tag": "text", "text": line}] for line in plain_lines(notice)]
        body = {"msg_type": "post", "content": {"post": {"zh_cn": {"title": headline(notice), "content": rows}}}}
        if secret:
            stamp = int(now)
            body = {"timestamp": str(stamp), "sign": feishu_sign(secret, stamp), **body}
    else:
        data = json.dumps(event_payload(notice, now), ensure_ascii=False, separators=(",", ":")).encode()
        webhook_id, stamp = message_id(notice), int(now)
        headers.update({"webhook-id": webhook_id, "webhook-timestamp": str(stamp),
                        "webhook-signature": standard_webhooks_signature(secret, webhook_id, stamp, data)})
        return Request(url, headers, data)
    return Request(url, headers, json.dumps(body, ensure_ascii=False).encode("utf-8"))


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(extra)) if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def robot_refusal(fmt: str, body: bytes) -> str:
    """Why a robot refused a message it answered 200 to ('' when it took it): WeCom and DingTalk
    answer `errcode`, Feishu `code`, 0 meaning success."""
    if fmt == "json":
        return ""
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
    if code in (0, "0", None):
        return ""
    return f"the robot answered code {code}: {answer.get('errmsg') or answer.get('msg') or ''}".rstrip(": ")


# --- what was announced: the job's record (pure) ---------------------------------------------

def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]  # the URL carries a credential: never stored


def record_of(result: JobResult, prefix: str) -> OutputObject | None:
    """Where the messages sent about the job are recorded (None: the job names no bucket)."""
    where = location_of(result.job, prefix or STATE_PREFIX)
    if where is None:
        return None
    return OutputObject(where.bucket, where.region, f"{prefix or STATE_PREFIX}notified/{result.job.job_id}.json", None)


def _messages(record: bytes | None, job_id: str) -> list[dict[str, Any]]:
    """The messages a record lists; none for no record, or an object that is no record of this job's."""
    try:
        data = json.loads(record) if record else None
    except ValueError:
        return []
    if not isinstance(data, dict) or data.get("jobId") != job_id or not isinstance(data.get("messages"), list):
        return []
    return [m for m in data["messages"] if isinstance(m, dict) and isinstance(m.get("problems"), list)]


def announced_in(record: bytes | None, job_id: str) -> dict[str, frozenset[Problem]]:
    """The problems announced to each URL (by its hash), as the record lists them."""
    found: dict[str, set[Problem]] = {}
    for message in _messages(record, job_id):
        named = found.setdefault(str(message.get("url")), set())
        for p in message["problems"]:
            if isinstance(p, dict):
                named.add(("", str(p["outcome"])) if "outcome" in p else (str(p.get("key")), str(p.get("verdict"))))
    return {url: frozenset(named) for url, named in found.items()}


def record_entry(notice: Notice, url: str, host: str, fmt: str, sent_at: float) -> dict[str, Any]:
    return {"url": url_hash(url), "host": host, "format": fmt, "outcome": notice.outcome,
            "webhookId": message_id(notice), "requestId": notice.request_id,
            "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at)),
            "problems": [{"outcome": what} if not key else {"key": key, "verdict": what}
                         for key, what in sorted(problems(notice))]}


def _sent(message: Mapping[str, Any]) -> tuple[object, object]:
    return message.get("url"), message.get("webhookId")


def merged_record(earlier: bytes | None, job_id: str, entries: list[dict[str, Any]]) -> bytes:
    """The record listing the earlier messages and `entries` (pure)."""
    messages = _messages(earlier, job_id)
    known = {_sent(m) for m in messages}
    messages += [e for e in entries if _sent(e) not in known]
    return json.dumps({"jobId": job_id, "messages": messages}, ensure_ascii=False, indent=1).encode()


def record_lost(current: bytes | None, job_id: str, entries: list[dict[str, Any]]) -> bool:
    """Whether a writer that read before our write overwrote it, dropping a message of ours (pure)."""
    there = {_sent(m) for m in _messages(current, job_id)}
    return any(_sent(e) not in there for e in entries)


# --- I/O ----------------------------------------------------------------------------------

class MarkerStore(Protocol):
    def get_bytes(self, target: OutputObject) -> bytes | None: ...
    def put_bytes(self, target: OutputObject, body: bytes, content_type: str) -> None: ...


Send = Callable[[Request, float], "tuple[int, bytes]"]


class Sender:
    """POSTs with requests (vendored with the COS SDK); one session per container. Its adapter
    (handlers/exchange.py) bounds each attempt as a whole, status line, headers and body, by
    `timeout`: requests' own bounds each socket read, which a receiver or a proxy that sends a
    byte at a time answers in time for ever."""

    def __init__(self) -> None:
        self._session = requests.Session()
        exchange.mount(self._session, exchange.BoundedAdapter())

    def __call__(self, request: Request, timeout: float) -> tuple[int, bytes]:
        until = time.monotonic() + timeout
        try:
            answer = self._session.post(request.url, data=request.body, headers=dict(request.headers),
                                        timeout=timeout, allow_redirects=False, stream=True)
        except requests.Timeout:
            raise TransientError(f"no answer within {timeout:.1f} s") from None
        except requests.RequestException as exc:
            raise TransientError(f"the request failed: {type(exc).__name__}") from None
        try:
            body = _body_within(answer.raw)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            if time.monotonic() >= until:
                raise TransientError(f"no whole answer within {timeout:.1f} s") from None
            raise TransientError(f"the answer broke off: {type(exc).__name__}") from None
        finally:
            answer.close()
        if time.monotonic() >= until:  # an answer without a length ends where its time cut it
            raise TransientError(f"no whole answer within {timeout:.1f} s")
        return answer.status_code, body


def _body_within(raw: Any) -> bytes:
    """The answer's body, up to MAX_ANSWER_BYTES (the session's adapter bounds the time)."""
    body = bytearray()
    while len(body) < MAX_ANSWER_BYTES:
        # What has arrived (it waits for no more), decoded: requests offers gzip and deflate.
        piece = raw.read1(MAX_ANSWER_BYTES - len(body), decode_content=True)
        if not piece:
            break
        body += piece
    return bytes(body)


def deliver(request: Request, fmt: str, send: Send, deadline: Deadline) -> None:
    """Send once, again on 5xx, 429 and timeouts while the deadline allows; raises DeliveryFailed."""
    def attempt() -> None:
        left = deadline.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            raise DeliveryFailed("too little of the invocation's time was left to send it")
        status, body = send(request, min(ATTEMPT_SECONDS, left))
        if status >= 500 or status == 429:
            raise TransientError(f"the receiver answered {status}")
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the receiver answered {status}")
        refusal = robot_refusal(fmt, body)
        if refusal:
            raise DeliveryFailed(refusal)
    try:
        retrying(attempt, deadline)
    except TransientError as exc:
        raise DeliveryFailed(str(exc)) from None


class DeliveryFailed(Exception):
    pass


_registered: set[str] = set()


def notify(results: list[JobResult], settings: Settings, store: MarkerStore, deadline: Deadline,
           request_id: str, send: Send | None = None) -> dict[str, dict[str, Any]]:
    """Send the messages NOTIFY_ON calls for; returns, per job id, the fields its
    `job processed` line carries (`notification`, `notificationsSent`, `notificationsFailed`)."""
    secrets = [s for s in (settings.notify_secret, *settings.notify_urls) if s not in _registered]
    if secrets:  # a robot's URL is its credential: no log line may show it
        log.register_secrets(secrets)
        _registered.update(secrets)
    sender = send or _default_sender()
    budget = Deadline(deadline.at - (RESERVE_SECONDS if settings.report_prefix else 0.5))
    fields: dict[str, dict[str, Any]] = {}
    for result in results:
        notice = notice_of(result, settings.notify_on, request_id)
        if notice is None:
            continue
        tally = _notify_job(notice, result, settings, store, sender, budget)
        status = "failed" if tally["failed"] else "sent" if tally["sent"] else "already-sent"
        fields[result.job.job_id] = {"notification": status, "notificationsSent": tally["sent"],
                                     "notificationsFailed": tally["failed"]}
    return fields


def _notify_job(notice: Notice, result: JobResult, settings: Settings, store: MarkerStore, send: Send,
                deadline: Deadline) -> dict[str, int]:
    """Each URL gets what was not announced to it: one read of the job's record, one write after sending."""
    urls = settings.notify_urls
    where = record_of(result, settings.report_prefix)
    if where is None and settings.verify_with_ci:
        # No bucket: CI could not be asked about this job (pipeline._confirm), so nothing vouches for it.
        log.warning("notification not sent", jobId=notice.job_id, outcome=notice.outcome,
                    reason="the job names no bucket to confirm it in with CI")
        return {"sent": 0, "already-sent": 0, "failed": len(urls)}
    try:
        announced = announced_in(retrying(partial(store.get_bytes, where), deadline), notice.job_id) \
            if where is not None else {}
    except (TransientError, StorageError) as exc:
        log.error("notification not sent", jobId=notice.job_id, outcome=notice.outcome,
                  reason=f"what was announced before could not be read: {exc}")
        return {"sent": 0, "already-sent": 0, "failed": len(urls)}
    tally, entries = {"sent": 0, "already-sent": 0, "failed": 0}, []
    for url in urls:
        host = urllib.parse.urlsplit(url).hostname or "?"
        message = narrowed(notice, announced.get(url_hash(url), frozenset()))
        if message is None:
            log.info("notification already sent", jobId=notice.job_id, outcome=notice.outcome, host=host)
            tally["already-sent"] += 1
            continue
        entry = _send_one(message, url, host, settings, send, deadline)
        tally["sent" if entry else "failed"] += 1
        entries += [entry] if entry else []
    if entries and where is None:
        log.warning("notification sent, but the job names no bucket to remember it in: a replay sends it again",
                    jobId=notice.job_id)
    elif entries and where is not None:
        _record(store, where, notice.job_id, entries, deadline)
    return tally


def _send_one(message: Notice, url: str, host: str, settings: Settings, send: Send,
              deadline: Deadline) -> dict[str, Any] | None:
    """Deliver `message` to `url`; its record entry, or None when it failed (logged)."""
    fmt = notify_format_of(url, settings.notify_format)
    try:
        deliver(build_request(message, url, fmt, settings.notify_secret, time.time()), fmt, send, deadline)
    except DeliveryFailed as exc:
        log.error("notification failed", jobId=message.job_id, outcome=message.outcome, host=host, format=fmt,
                  reason=str(exc))
        return None
    log.info("notification sent", jobId=message.job_id, outcome=message.outcome, host=host, format=fmt)
    return record_entry(message, url, host, fmt, time.time())


def _record(store: MarkerStore, where: OutputObject, job_id: str, entries: list[dict[str, Any]],
            deadline: Deadline) -> None:
    """Add the messages sent to the job's record: read right before writing, read back after (another
    invocation's write may have landed in between), written again once when ours was dropped."""
    def write() -> None:
        store.put_bytes(where, merged_record(store.get_bytes(where), job_id, entries), "application/json")
    try:
        retrying(write, deadline)
        if record_lost(retrying(partial(store.get_bytes, where), deadline), job_id, entries):
            retrying(write, deadline)
    except (TransientError, StorageError) as exc:
        log.error("notification sent but not recorded: a replay will send it again", jobId=job_id,
                  reason=str(exc))


_sender: Sender | None = None


def _default_sender() -> Sender:
    global _sender
    if _sender is None:
        _sender = Sender()
    return _sender
