"""Verdict rules (pure): what a HEAD settles and what only the content can."""
from datetime import datetime, timedelta, timezone

from handlers.checking.verify import decide_by_content, decide_without_content
from handlers.intake.models import Method, ObjectState, OutputObject, Verdict

MD5 = "3b883c0462ba845acdf3eb7e30db1a1c"
OTHER = "62de6bb513d6105eeeb1a6ab0077cb5a"
END = datetime(2022, 7, 1, 10, 12, 32, tzinfo=timezone(timedelta(hours=8)))
TARGET = OutputObject("b-1", "ap-chongqing", "output/a.mp3", MD5)


def state(etag: str, modified: datetime = END) -> ObjectState:
    return ObjectState(etag=etag, size=10, last_modified=modified)


def test_missing_object():
    check = decide_without_content(TARGET, None, "auto")
    assert (check.verdict, check.method) == (Verdict.MISSING, Method.NONE)


def test_no_md5_reported_is_unverifiable():
    target = OutputObject("b-1", "r", "k", None)
    check = decide_without_content(target, state(MD5), "auto")
    assert (check.verdict, check.method) == (Verdict.UNVERIFIABLE, Method.NONE)


def test_equal_etag_verifies_in_auto_mode():
    check = decide_without_content(TARGET, state(MD5), "auto")
    assert (check.verdict, check.method) == (Verdict.VERIFIED, Method.ETAG)


def test_full_mode_always_reads_the_content():
    assert decide_without_content(TARGET, state(MD5), "full") is None


def test_different_or_multipart_etag_needs_the_content():
    assert decide_without_content(TARGET, state(OTHER), "auto") is None
    assert decide_without_content(TARGET, state(OTHER + "-3"), "auto") is None


def test_content_decides():
    assert decide_by_content(TARGET, state("x-2"), MD5, END).verdict is Verdict.VERIFIED
    assert decide_by_content(TARGET, state("x-2"), MD5, END).method is Method.CONTENT
    mismatch = decide_by_content(TARGET, state(OTHER), OTHER, END)
    assert (mismatch.verdict, mismatch.method) == (Verdict.MISMATCH, Method.CONTENT)
    assert OTHER in mismatch.reason


def test_rewritten_long_after_the_job_is_superseded():
    late = state(OTHER, END + timedelta(seconds=61))
    assert decide_by_content(TARGET, late, OTHER, END).verdict is Verdict.SUPERSEDED
    within_grace = state(OTHER, END + timedelta(seconds=59))
    assert decide_by_content(TARGET, within_grace, OTHER, END).verdict is Verdict.MISMATCH


def test_rewritten_with_the_same_bytes_is_still_verified():
    late = state("x-2", END + timedelta(hours=1))
    assert decide_by_content(TARGET, late, MD5, END).verdict is Verdict.VERIFIED


def test_unknown_end_time_never_supersedes():
    late = state(OTHER, END + timedelta(days=1))
    assert decide_by_content(TARGET, late, OTHER, None).verdict is Verdict.MISMATCH
