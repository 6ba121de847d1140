"""The shortcuts taken for speed (see bench/) decide exactly as the long ways they skip."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.intake.callback import parse_callback
from handlers.intake.nodes import _CHINA, _TIME_FORMATS, MalformedCallback, timestamp
from handlers.settings import Settings
from handlers.storage.clients import Clients
from tests.conftest import function_env
from tests.samples import BUCKET


def strptime_reading(value: str) -> datetime | None:
    """timestamp() as it was before its shortcut: the formats alone."""
    if value in ("", "-"):
        return None
    for fmt in _TIME_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_CHINA)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=_CHINA)
        except ValueError:
            continue
    raise MalformedCallback("not a time")


def outcome(read, value: str):
    try:
        parsed = read(value)
    except MalformedCallback:
        return "refused"
    return None if parsed is None else (parsed, parsed.utcoffset())


digits = st.text(alphabet="0123456789", min_size=1, max_size=4)
times = st.builds("{}-{}-{}{}{}:{}:{}{}{}{}".format, digits, digits, digits, st.sampled_from("T t_"), digits, digits,
                  digits, st.sampled_from("+-"), digits, digits)


@pytest.mark.slow
@given(st.one_of(times, st.text(max_size=30)))
def test_timestamps_read_as_strptime_reads_them(value):
    assert outcome(lambda v: timestamp(v, "EndTime"), value) == outcome(strptime_reading, value)


@pytest.mark.parametrize("value", [
    "2022-07-01T10:12:26+0800", "2022-07-01 10:12:26+0800", "2022-07-01T10:12:26-0000", "2022-02-29T10:12:26+0800",
    "2022-07-01T24:00:00+0800", "2022-07-01T10:12:60+0800", "2022-07-01T10:12:26+0860", "2022-07-01T10:12:26+2400",
    "2022-07-01t10:12:26+0800", "٢٠٢٢-07-01T10:12:26+0800", "2022-07-01T10:12:26.5+0800", "2022-07-01T10:12:26Z",
])
def test_edge_timestamps_read_as_strptime_reads_them(value):
    assert outcome(lambda v: timestamp(v, "EndTime"), value) == outcome(strptime_reading, value)


@pytest.mark.parametrize("tag, reason", [
    (r'"\ud800"', "the text is not valid Unicode (a lone surrogate)"),
    (r'{"#text": "\ud800"}', "the text is not valid Unicode (a lone surrogate)"),
    ("true", "expected text, got True"),
    ('{"A": "1"}', "expected text, got dict"),
])
def test_text_outside_the_ascii_shortcut_is_still_checked_with_its_path(tag, reason):
    body = '{"JobsDetail": [{"JobId": "j1", "State": "Failed", "Tag": ' + tag + "}]}"
    with pytest.raises(MalformedCallback) as refused:
        parse_callback(body.encode())
    assert str(refused.value) == f"Response.JobsDetail[0].Tag: {reason}"


def test_non_ascii_text_is_kept():
    body = json.dumps({"JobsDetail": {"JobId": "j1", "State": "Failed", "Message": " 音频时长过短 "}}).encode()
    assert parse_callback(body).jobs_detail[0].message == "音频时长过短"


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "no_proxy"])
def test_a_proxy_in_the_environment_is_still_honoured(emulator, monkeypatch, variable):
    monkeypatch.setenv(variable, "http://proxy.invalid:3128")
    session = Clients(Settings.from_env(function_env(emulator)))._session
    assert session.trust_env


def test_a_netrc_file_keeps_the_environment_in_use(emulator, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.com login a password b\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert Clients(Settings.from_env(function_env(emulator)))._session.trust_env


def test_without_proxy_or_netrc_the_environment_is_read_once(emulator, monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/bundle.pem")
    session = Clients(Settings.from_env(function_env(emulator)))._session
    assert (session.trust_env, session.verify) == (False, "/etc/ssl/certs/bundle.pem")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert Clients(Settings.from_env(function_env(emulator)))._session.verify is True


def test_after_the_tag_write_the_read_back_and_the_head_go_out_together(emulator, app):
    """Both only look at what our PUT ?tagging left: one round trip, not two (bench/: critical
    path). Every request is slowed alike, so the overlap shows in the emulator's log."""
    from tests.conftest import http_event, invoke, md5
    from tests.samples import job_xml

    data = b"an output whose ETag decides"
    emulator.put_object(BUCKET, "out/a.mp3", data)
    emulator.add_fault(key="out/a.mp3", delay=0.15, times=None)
    status, result, _ = invoke(app, http_event(job_xml({"out/a.mp3": md5(data)}, ["out/a.mp3"])))
    assert status == 200 and result["jobs"][0]["objects"][0]["actions"] == ["tagged"]
    log = [r for r in emulator.requests if r.key == "out/a.mp3"]
    [write] = [r for r in log if r.method == "PUT"]
    after = [r for r in log if r.started >= write.finished]
    assert sorted((r.method, "tagging" in r.query) for r in after) == [("GET", True), ("HEAD", False)]
    read_back, head = sorted(after, key=lambda r: r.method)
    assert head.started < read_back.finished and read_back.started < head.finished
