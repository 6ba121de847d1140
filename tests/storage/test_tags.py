"""Tag merging within COS's limits."""
import pytest

from handlers.storage.tags import JOB_TAG, VERIFY_TAG, plan_tags, problem


def test_merges_with_the_users_tags():
    plan = plan_tags({"team": "audio", "env": "prod"}, "verified", "j1")
    assert plan.tags == {"team": "audio", "env": "prod", VERIFY_TAG: "verified", JOB_TAG: "j1"}
    assert not plan.done and not plan.skipped


def test_replaces_an_earlier_verdict():
    plan = plan_tags({VERIFY_TAG: "mismatch", JOB_TAG: "j0", "team": "a"}, "verified", "j1")
    assert plan.tags == {VERIFY_TAG: "verified", JOB_TAG: "j1", "team": "a"}


def test_already_tagged_needs_no_write():
    plan = plan_tags({VERIFY_TAG: "verified", JOB_TAG: "j1"}, "verified", "j1")
    assert plan.tags is None and plan.done


def test_keeps_the_users_tags_when_ours_would_exceed_ten():
    users = {f"k{i}": "v" for i in range(9)}
    plan = plan_tags(users, "verified", "j1")
    assert plan.tags is None and not plan.done
    assert "9 tags of its own" in plan.skipped and "10" in plan.skipped


def test_fits_exactly_ten():
    users = {f"k{i}": "v" for i in range(8)}
    assert len(plan_tags(users, "verified", "j1").tags) == 10


def test_replacing_our_own_tags_does_not_count_twice():
    users = {f"k{i}": "v" for i in range(8)}
    plan = plan_tags({**users, VERIFY_TAG: "mismatch", JOB_TAG: "j0"}, "verified", "j1")
    assert len(plan.tags) == 10


@pytest.mark.parametrize("key, value, ok", [
    ("ci-job", "j40644e92f8e311ecb90d0b03267ce0e5", True),
    ("a" * 127, "v", True),
    ("a" * 128, "v", False),
    ("", "v", False),
    ("k", "v" * 255, True),
    ("k", "v" * 256, False),
    ("k", "a b+c-d=e.f_g:h/i@j", True),
    ("k", "semi;colon", False),
    ("k", "quote'", False),
    # Limits count UTF-8 bytes (PUT Object tagging: key < 128 bytes, value < 256 bytes), and a value
    # may not be empty (object tag overview: 1-255).
    ("键" * 42 + "k", "v", True),  # 127 bytes
    ("键" * 43, "v", False),  # 43 characters, 129 bytes
    ("k", "值" * 85, True),  # 255 bytes
    ("k", "值" * 86, False),  # 86 characters, 258 bytes
    ("k", "", False),
])
def test_cos_tag_rules(key, value, ok):
    assert (problem(key, value) == "") is ok


def test_an_empty_job_id_is_skipped_not_written():
    plan = plan_tags({}, "verified", "")
    assert plan.tags is None and "empty" in plan.skipped


def test_a_job_id_cos_cannot_store_is_skipped_not_written():
    plan = plan_tags({}, "verified", "job;1")
    assert plan.tags is None and "does not allow" in plan.skipped
