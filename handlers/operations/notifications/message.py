"""What a notification says (pure): the job, its outcome and the objects NOTIFY_ON names, the problems a
message announces and the id that names them, and the text every vendor shows, escaped for the robots'
markdown. Each vendor's module (wecom.py, dingtalk.py, feishu.py, webhooks.py) puts it in its format."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from handlers.intake.models import JobResult, ObjectResult, Outcome
from handlers.operations.audit import location_of

MAX_OBJECTS_LISTED = 20
MAX_ROBOT_TEXT = 3500  # WeCom's markdown content is limited to 4096 bytes; keep well inside


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


def message_id(notice: Notice) -> str:
    """The same for every attempt and replay of the message announcing these problems of this job:
    a FileHashCode callback that finds a new problem in the job is a new message."""
    named = sorted(f"{key}\n{what}" for key, what in problems(notice))
    digest = hashlib.sha256("\n".join((notice.job_id, *named)).encode()).hexdigest()
    return f"msg_{digest[:32]}"


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


# --- what comes from outside is shown as text ---------------------------------------------------
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
    """The message as the robots' markdown subset (WeCom, DingTalk): a heading, quotes, a list, bold. Each
    line begins with markup of ours, so nothing from outside stands where a block could begin."""
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
