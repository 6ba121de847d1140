"""Emulator behaviours checked against Tencent's COS documentation, through cos-python-sdk-v5 over HTTP
(and, for a header the SDK cannot send, a request it signs)."""
from __future__ import annotations

import os

import pytest
import requests
from qcloud_cos.cos_exception import CosServiceError

MIB = 1024 * 1024
REGION = "ap-chongqing"


def service_error(call, *args, **kwargs) -> CosServiceError:
    with pytest.raises(CosServiceError) as raised:
        call(*args, **kwargs)
    return raised.value


def copy_source(bucket: str, key: str) -> dict:
    return {"Bucket": bucket, "Key": key, "Region": REGION}


def tag_set(tags: dict[str, str]) -> dict:
    return {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}}


def signed_copy(emulator, cos, bucket: str, key: str, source: str, **headers: str) -> requests.Response:
    """PUT Object - Copy with headers the SDK's copy_object has no parameter for."""
    host = f"{bucket}.cos.{REGION}.myqcloud.com"
    headers = {"Host": host, "x-cos-copy-source": f"{host}/{source}", **headers}
    authorization = cos.get_auth("PUT", bucket, key, Headers=headers)
    return requests.put(f"{emulator.endpoint}/{key}", headers={**headers, "Authorization": authorization},
                        timeout=10)


# --- PUT Object - Copy: x-cos-tagging-directive ------------------------------------------------


def test_a_copy_carries_the_source_tags_by_default(emulator, cos, bucket):
    emulator.put_object(bucket, "src", b"x")
    emulator.set_tags(bucket, "src", {"owner": "team-a", "ci-verify": "verified"})
    cos.copy_object(Bucket=bucket, Key="dst", CopySource=copy_source(bucket, "src"))
    assert emulator.tags(bucket, "dst") == {"owner": "team-a", "ci-verify": "verified"}
    response = signed_copy(emulator, cos, bucket, "dst2", "src", **{"x-cos-tagging-directive": "Copy"})
    assert response.status_code == 200 and emulator.tags(bucket, "dst2") == {"owner": "team-a",
                                                                             "ci-verify": "verified"}


def test_a_copy_with_tagging_directive_replaced_takes_x_cos_tagging(emulator, cos, bucket):
    emulator.put_object(bucket, "src", b"x")
    emulator.set_tags(bucket, "src", {"owner": "team-a"})
    response = signed_copy(emulator, cos, bucket, "dst", "src",
                           **{"x-cos-tagging-directive": "Replaced", "x-cos-tagging": "a=1&b=2"})
    assert response.status_code == 200 and emulator.tags(bucket, "dst") == {"a": "1", "b": "2"}
    response = signed_copy(emulator, cos, bucket, "dst", "src", **{"x-cos-tagging-directive": "Replaced"})
    assert response.status_code == 200 and emulator.tags(bucket, "dst") == {}
    response = signed_copy(emulator, cos, bucket, "dst3", "src", **{"x-cos-tagging-directive": "Merge"})
    assert response.status_code == 400 and b"<Code>InvalidArgument</Code>" in response.content
    assert emulator.object_info(bucket, "dst3") is None


# --- Upload Part - Copy: 200 with an error body ---------------------------------------------------


def test_upload_part_copy_can_answer_200_with_an_error_body(emulator, cos, bucket):
    data = os.urandom(2 * MIB)
    emulator.put_object(bucket, "src", data)
    upload = cos.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    emulator.add_fault(method="PUT", key="dst", query="partNumber", copy_error_body=True)
    answer = cos.upload_part_copy(Bucket=bucket, Key="dst", PartNumber=1, UploadId=upload,
                                  CopySource=copy_source(bucket, "src"), CopySourceRange=f"bytes=0-{MIB - 1}")
    # The SDK does not look: the body is the error, with no ETag, and no part was stored.
    assert "ETag" not in answer and answer.get("Code") == "InternalError"
    assert cos.list_parts(Bucket=bucket, Key="dst", UploadId=upload).get("Part") is None
    again = cos.upload_part_copy(Bucket=bucket, Key="dst", PartNumber=1, UploadId=upload,
                                 CopySource=copy_source(bucket, "src"), CopySourceRange=f"bytes=0-{MIB - 1}")
    assert again["ETag"]


# --- tag limits in UTF-8 bytes; no empty value -------------------------------------------------


@pytest.mark.parametrize("tags, rule", [
    ({"k" * 128: "v"}, "key must be 1 to 127 bytes"),
    ({"键" * 43: "v"}, "key must be 1 to 127 bytes"),  # 43 characters, 129 bytes
    ({"k": "v" * 256}, "value must be 1 to 255 bytes"),
    ({"k": "值" * 86}, "value must be 1 to 255 bytes"),  # 86 characters, 258 bytes
    ({"k": ""}, "value must be 1 to 255 bytes"),
])
def test_tag_limits_count_utf8_bytes_and_refuse_empty_values(emulator, cos, bucket, tags, rule):
    emulator.put_object(bucket, "k", b"x")
    error = service_error(cos.put_object_tagging, Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert (error.get_status_code(), error.get_error_code()) == (400, "InvalidTag")
    assert rule in error.get_error_msg()
    error = service_error(cos.put_object, Bucket=bucket, Key="k2", Body=b"x",
                          Tagging="&".join(f"{k}={v}" for k, v in tags.items()))
    assert error.get_error_code() == "InvalidTag"


def test_tags_at_the_byte_limits_are_accepted(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    tags = {"键" * 42 + "k": "值" * 85}  # 127 and 255 bytes
    cos.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert emulator.tags(bucket, "k") == tags


# --- GET Object: ranges and empty objects -------------------------------------------------------


@pytest.mark.parametrize("value", ["bytes=10-", "bytes=11-", "bytes=10-20"])
def test_a_range_starting_at_or_past_the_end_is_416(emulator, cos, bucket, value):
    emulator.put_object(bucket, "r", b"0123456789")
    error = service_error(cos.get_object, Bucket=bucket, Key="r", Range=value)
    assert (error.get_status_code(), error.get_error_code()) == (416, "InvalidRange")


def test_an_open_range_on_an_empty_object_is_416(emulator, cos, bucket):
    emulator.put_object(bucket, "empty", b"")
    error = service_error(cos.get_object, Bucket=bucket, Key="empty", Range="bytes=0-")
    assert (error.get_status_code(), error.get_error_code()) == (416, "InvalidRange")


def test_a_zero_byte_get_answers_an_empty_body(emulator, cos, bucket, capsys):
    emulator.put_object(bucket, "empty", b"")
    for _ in range(2):  # the connection is still usable afterwards
        response = cos.get_object(Bucket=bucket, Key="empty")
        assert response["Body"].get_raw_stream().read() == b"" and response["Content-Length"] == "0"
    # The server's send path must not raise (socketserver prints what a handler raises to stderr).
    assert "Traceback" not in capsys.readouterr().err
