"""message.py: the problems a message announces and the id that names them; text from outside
shown as text in the robots' markdown (issue 19, defect 9), clipped to the robots' limit on no half escape."""
from __future__ import annotations

import dataclasses
import re

import pytest

from handlers.operations.notifications.message import (
    MAX_OBJECTS_LISTED,
    MAX_ROBOT_TEXT,
    AffectedObject,
    Notice,
    _clip,
    markdown,
    md_inline,
    message_id,
    narrowed,
    one_line,
    problems,
)
from tests.operations.notifications.conftest import JOB
from tests.operations.notifications.markup import assert_text_only, commonmark_text, evil_notice, live_markup
from tests.samples import BUCKET, REGION


def test_what_a_message_announces_is_what_was_not_announced_before():
    """The pure part of red team D3: problems are (key, verdict) and, when NOTIFY_ON names it, the outcome;
    a message about the rest keeps the id that a message naming just those problems has."""
    gone, big = AffectedObject("out/gone.wav", "missing", "r", ""), AffectedObject("out/big.wav", "mismatch", "r", "")
    moved = AffectedObject("out/x.wav", "verified", "the move failed", "", "error")
    notice = Notice(JOB, "VoiceSeparate", "Success", "failed", BUCKET, REGION, "", "", (gone, big, moved), {}, "r1",
                    outcome_named=True)
    assert problems(notice) == {("out/gone.wav", "missing"), ("out/big.wav", "mismatch"), ("out/x.wav", "error"),
                                ("", "failed")}
    rest = narrowed(notice, frozenset({("out/gone.wav", "missing"), ("", "failed")}))
    assert rest is not None and rest.objects == (big, moved) and not rest.outcome_named
    assert message_id(rest) == message_id(dataclasses.replace(notice, objects=(moved, big), outcome_named=False,
                                                              request_id="r2"))
    assert narrowed(notice, problems(notice)) is None
    # The same object with another verdict is another problem.
    assert narrowed(notice, frozenset({("out/gone.wav", "mismatch")} | problems(notice) - {("out/gone.wav",
                                                                                             "missing")})) is not None


@pytest.mark.parametrize("text, shown", [
    ("out/my_file-1 (live).mp3", "out/my_file-1 (live).mp3"),  # what keys usually are stays as it is
    ("[a](https://e.example/)", "\\[a\\]\\(https://e.example/)"),
    ("![i](https://e.example/p.png)", "!\\[i\\]\\(https://e.example/p.png)"),
    ("a`b``c", "a\\`b\\`\\`c"), ("**b** *i* _i_ ~~s~~", "\\*\\*b\\*\\* \\*i\\* \\_i\\_ \\~\\~s\\~\\~"),
    ("<font color=\"info\">x</font> <@all> <https://e.example/>",
     "&lt;font color=\"info\">x&lt;/font> &lt;@all> &lt;https://e.example/>"),
    ("&lt; &#60; &#x3c; AT&T", "&amp;lt; &amp;\\#60; &amp;\\#x3c; AT&T"), ("a\\", "a\\\\"), ("# x | y", "\\# x \\| y"),
    ("a\nb\r\nc\u2028d\u2029e\x0bf\x1bg\u202eh", "a b  c d e f g h"),
])
def test_md_inline_shows_the_text_itself(text, shown):
    assert md_inline(text) == shown
    assert commonmark_text(md_inline(text)) == one_line(text) and live_markup(md_inline(text)) == ""


def test_a_clipped_message_ends_on_no_half_escape():
    content = markdown(evil_notice(objects=MAX_OBJECTS_LISTED))
    assert len(content.encode()) <= 4096 and content.endswith("\n…")
    cut = content[:-2].rsplit("\n", 1)[1]  # the line the clip went through
    assert not re.search(r"(?<!\\)(\\\\)*\\$|&#?[A-Za-z0-9]*$", cut), cut
    assert_text_only(content[:-2], expected_lines=content.count("\n"))


@pytest.mark.parametrize("short_by", range(24))
def test_a_clip_through_an_escape_leaves_no_half_of_it(short_by):
    """Wherever the 3,500-byte cut falls, no lone backslash (which would escape the "…") and no
    half character reference is left."""
    head = "### h\n- x "
    text = head + "Z" * (MAX_ROBOT_TEXT - len(head) - short_by) + md_inline("<&lt;\\[x`") * 4
    clipped = _clip(text)
    assert clipped.endswith("\n…") and len(clipped[:-2].encode()) <= MAX_ROBOT_TEXT
    tail = clipped[:-2].rsplit("Z", 1)[1]
    assert not re.search(r"(?<!\\)(\\\\)*\\$|&#?[A-Za-z0-9]*$", tail), tail
    assert live_markup(tail) == "" and commonmark_text(tail) in one_line("<&lt;\\[x`") * 4
