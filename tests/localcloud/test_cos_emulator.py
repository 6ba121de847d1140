"""The COS emulator, exercised through the real cos-python-sdk-v5 over HTTP (no mocks)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import crcmod
import pytest
import requests
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from localcloud.cos import CosEmulator

REGION = "ap-chongqing"
MIB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]

crc64_ecma = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)


def service_error(call, *args, **kwargs) -> CosServiceError:
    with pytest.raises(CosServiceError) as raised:
        call(*args, **kwargs)
    return raised.value


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(data: bytes, part_size: int) -> str:
    parts = [data[offset:offset + part_size] for offset in range(0, len(data), part_size)]
    return hashlib.md5(b"".join(hashlib.md5(part).digest() for part in parts)).hexdigest() + f"-{len(parts)}"


def read_body(response) -> bytes:
    return response["Body"].get_raw_stream().read()


def cos_host(bucket: str, region: str = REGION) -> str:
    return f"{bucket}.cos.{region}.myqcloud.com"


# ------------------------------------------------------------------ signatures


def test_signed_request_is_accepted(emulator, cos, bucket):
    cos.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    assert read_body(cos.get_object(Bucket=bucket, Key="hello.txt")) == b"hello"


def test_wrong_secret_key_is_signature_does_not_match(emulator, client_factory, bucket):
    client = client_factory(emulator, secret_key="not-the-secret")
    error = service_error(client.put_object, Bucket=bucket, Key="k", Body=b"x")
    assert (error.get_status_code(), error.get_error_code()) == (403, "SignatureDoesNotMatch")
    assert emulator.keys(bucket) == []


def test_unknown_secret_id_is_invalid_access_key_id(emulator, client_factory, bucket):
    client = client_factory(emulator, secret_id="AKIDsomeoneelse")
    error = service_error(client.get_object, Bucket=bucket, Key="k")
    assert (error.get_status_code(), error.get_error_code()) == (403, "InvalidAccessKeyId")


def test_expired_sign_time_is_access_denied(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"data")
    host = cos_host(bucket)

    def get_with(expired: int) -> requests.Response:
        authorization = cos.get_auth("GET", bucket, "k", Expired=expired, Headers={"Host": host})
        return requests.get(f"{emulator.endpoint}/k", headers={"Host": host, "Authorization": authorization})

    assert get_with(300).content == b"data"
    expired = get_with(-120)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text and "Request has expired" in expired.text


def test_missing_authorization_is_access_denied(emulator, bucket):
    response = requests.get(f"{emulator.endpoint}/k", headers={"Host": cos_host(bucket)})
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert response.headers["x-cos-request-id"]


def test_token_is_required_when_configured(client_factory, bucket):
    with CosEmulator(secret_id="AKIDtmp", secret_key="tmp-secret", token="session-token") as emu:
        emu.create_bucket(bucket)
        emu.register_job(bucket, {"JobId": "j1", "Tag": "VoiceSeparate", "State": "Success"})
        without_token = client_factory(emu, secret_id="AKIDtmp", secret_key="tmp-secret")
        wrong_token = client_factory(emu, secret_id="AKIDtmp", secret_key="tmp-secret", token="other")
        with_token = client_factory(emu, secret_id="AKIDtmp", secret_key="tmp-secret", token="session-token")
        ci_with_token = client_factory(emu, secret_id="AKIDtmp", secret_key="tmp-secret", token="session-token",
                                       endpoint=f"ci.{REGION}.myqcloud.com")

        for client in (without_token, wrong_token):
            error = service_error(client.put_object, Bucket=bucket, Key="k", Body=b"x")
            assert (error.get_status_code(), error.get_error_code()) == (403, "InvalidToken")
        with_token.put_object(Bucket=bucket, Key="k", Body=b"x")
        assert ci_with_token.ci_get_media_jobs(Bucket=bucket, JobIDs="j1")["JobsDetail"][0]["JobId"] == "j1"
        assert emu.requests[-1].headers["x-ci-security-token"] == "session-token"


def test_host_naming_no_bucket_is_rejected(emulator):
    response = requests.get(f"{emulator.endpoint}/k")
    assert response.status_code == 400
    assert "names no bucket" in response.text


# --------------------------------------------------------------------- objects


def test_put_get_head_round_trip(emulator, cos, bucket):
    data = os.urandom(3000)
    put = cos.put_object(Bucket=bucket, Key="dir/a b+c.bin", Body=data, ContentType="audio/mpeg",
                         Metadata={"x-cos-meta-origin": "test"})
    assert put["ETag"] == f'"{md5_hex(data)}"'

    got = cos.get_object(Bucket=bucket, Key="dir/a b+c.bin")
    assert read_body(got) == data
    head = cos.head_object(Bucket=bucket, Key="dir/a b+c.bin")
    for headers in (got, head):
        assert headers["ETag"] == f'"{md5_hex(data)}"'
        assert headers["Content-Length"] == "3000"
        assert headers["Content-Type"] == "audio/mpeg"
        assert headers["x-cos-meta-origin"] == "test"
        assert headers["x-cos-hash-crc64ecma"] == str(crc64_ecma(data))
        assert headers["Server"] == "tencent-cos"
        assert headers["x-cos-request-id"]
        assert headers["Last-Modified"].endswith(" GMT")
        assert not any("tagging" in name.lower() for name in headers if name != "Body")
    assert emulator.object_info(bucket, "dir/a b+c.bin") == {
        "etag": md5_hex(data), "size": 3000, "last_modified": pytest.approx(time.time(), abs=5),
        "content_type": "audio/mpeg", "metadata": {"x-cos-meta-origin": "test"}, "crc64": str(crc64_ecma(data)),
    }


def test_range_requests(emulator, cos, bucket):
    emulator.put_object(bucket, "r", b"0123456789")

    def ranged(value):
        return cos.get_object(Bucket=bucket, Key="r", Range=value)

    for value, status_body, content_range in (
        ("bytes=2-5", b"2345", "bytes 2-5/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-3", b"789", "bytes 7-9/10"),
        ("bytes=8-100", b"89", "bytes 8-9/10"),
    ):
        response = ranged(value)
        assert read_body(response) == status_body
        assert response["Content-Range"] == content_range
        assert response["x-cos-hash-crc64ecma"] == str(crc64_ecma(b"0123456789"))
    error = service_error(ranged, "bytes=10-20")
    assert (error.get_status_code(), error.get_error_code()) == (416, "InvalidRange")


def test_missing_key_error_body(emulator, cos, bucket):
    error = service_error(cos.get_object, Bucket=bucket, Key="missing/key.mp3")
    assert error.get_status_code() == 404
    assert error.get_error_code() == "NoSuchKey"
    assert error.get_error_msg()
    assert error.get_resource_location() == f"{cos_host(bucket)}/missing/key.mp3"
    assert error.get_request_id() and error.get_trace_id() != "Unknown"


def test_head_missing_key_is_no_such_resource(emulator, cos, bucket):
    error = service_error(cos.head_object, Bucket=bucket, Key="missing")
    assert (error.get_status_code(), error.get_error_code()) == (404, "NoSuchResource")
    assert emulator.requests[-1].status == 404


def test_missing_bucket_and_wrong_region(emulator, cos, client_factory, bucket):
    error = service_error(cos.get_object, Bucket="absent-123456789", Key="k")
    assert (error.get_status_code(), error.get_error_code()) == (404, "NoSuchBucket")
    elsewhere = client_factory(emulator, region="ap-guangzhou")
    error = service_error(elsewhere.put_object, Bucket=bucket, Key="k", Body=b"x")
    assert error.get_error_code() == "NoSuchBucket"
    with pytest.raises(CosServiceError):
        cos.head_bucket(Bucket="absent-123456789")
    assert cos.head_bucket(Bucket=bucket)["x-cos-bucket-region"] == REGION


def test_bucket_create_and_delete(emulator, cos):
    cos.create_bucket(Bucket="fresh-123456789")
    assert service_error(cos.create_bucket, Bucket="fresh-123456789").get_error_code() == "BucketAlreadyExists"
    assert cos.get_bucket_location(Bucket="fresh-123456789") == {"LocationConstraint": REGION}
    cos.put_object(Bucket="fresh-123456789", Key="k", Body=b"x")
    cos.put_object(Bucket="fresh-123456789", Key="l", Body=b"x")
    assert service_error(cos.delete_bucket, Bucket="fresh-123456789").get_error_code() == "BucketNotEmpty"
    deleted = cos.delete_objects(Bucket="fresh-123456789", Delete={"Object": [{"Key": "k"}, {"Key": "l"}]})
    assert deleted["Deleted"] == [{"Key": "k"}, {"Key": "l"}]
    cos.delete_bucket(Bucket="fresh-123456789")
    assert service_error(cos.head_bucket, Bucket="fresh-123456789").get_status_code() == 404


def test_content_md5_is_checked(emulator, cos, bucket):
    cos.put_object(Bucket=bucket, Key="good", Body=b"payload", EnableMD5=True)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    error = service_error(cos.put_object, Bucket=bucket, Key="bad", Body=b"payload", ContentMD5=wrong)
    assert (error.get_status_code(), error.get_error_code()) == (400, "BadDigest")
    assert emulator.keys(bucket) == ["good"]


def test_delete_answers_204_even_when_absent(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    cos.delete_object(Bucket=bucket, Key="k")
    cos.delete_object(Bucket=bucket, Key="k")
    assert [record.status for record in emulator.requests] == [204, 204]
    assert emulator.object_info(bucket, "k") is None


def test_conditional_get(emulator, cos, bucket):
    etag = emulator.put_object(bucket, "k", b"x")
    assert read_body(cos.get_object(Bucket=bucket, Key="k", IfMatch=f'"{etag}"')) == b"x"
    error = service_error(cos.get_object, Bucket=bucket, Key="k", IfMatch='"0000"')
    assert (error.get_status_code(), error.get_error_code()) == (412, "PreconditionFailed")
    cos.get_object(Bucket=bucket, Key="k", IfNoneMatch=etag)
    assert emulator.requests[-1].status == 304


def test_chunked_upload(emulator, cos, bucket):
    def body():
        yield b"abc" * 1000
        yield b"def"

    put = cos.put_object(Bucket=bucket, Key="chunked", Body=body())
    assert emulator.requests[-1].headers["transfer-encoding"] == "chunked"
    assert emulator.object_bytes(bucket, "chunked") == b"abc" * 1000 + b"def"
    assert put["ETag"] == f'"{md5_hex(b"abc" * 1000 + b"def")}"'


def test_list_objects_prefix_delimiter_and_pages(emulator, cos, bucket):
    for key in ("a/1", "a/2", "a/sub/3", "b/4", "c"):
        emulator.put_object(bucket, key, key.encode())
    listing = cos.list_objects(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [item["Key"] for item in listing["Contents"]] == ["a/1", "a/2"]
    assert listing["CommonPrefixes"] == [{"Prefix": "a/sub/"}]
    assert listing["Contents"][0]["ETag"] == f'"{md5_hex(b"a/1")}"' and listing["Contents"][0]["Size"] == "3"

    keys, marker = [], ""
    while True:
        page = cos.list_objects(Bucket=bucket, MaxKeys=2, Marker=marker)
        keys += [item["Key"] for item in page["Contents"]]
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert keys == ["a/1", "a/2", "a/sub/3", "b/4", "c"] == emulator.keys(bucket)
    assert emulator.keys(bucket, prefix="a/") == ["a/1", "a/2", "a/sub/3"]


def test_overwrite_is_atomic_for_concurrent_readers(emulator, cos, bucket):
    size = 4 * MIB
    emulator.put_object(bucket, "hot", b"a" * size)
    stop = threading.Event()

    def overwrite():
        letter = 0
        while not stop.is_set():
            emulator.put_object(bucket, "hot", bytes([ord("a") + letter % 2]) * size)
            letter += 1

    writer = threading.Thread(target=overwrite)
    writer.start()
    try:
        for _ in range(8):
            data = read_body(cos.get_object(Bucket=bucket, Key="hot"))
            assert len(data) == size and data in (b"a" * size, b"b" * size)
    finally:
        stop.set()
        writer.join()


# ------------------------------------------------------------------- multipart


def test_sdk_multipart_upload_etag(emulator, cos, bucket, tmp_path):
    data = os.urandom(2 * MIB + 300_000)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    response = cos.upload_file(Bucket=bucket, Key="multi.bin", LocalFilePath=str(path), PartSize=1, MAXThread=2)
    expected = multipart_etag(data, MIB)
    assert response["ETag"] == f'"{expected}"' and expected.endswith("-3")
    head = cos.head_object(Bucket=bucket, Key="multi.bin")
    assert head["ETag"] == f'"{expected}"'
    assert head["x-cos-hash-crc64ecma"] == str(crc64_ecma(data))
    assert emulator.object_bytes(bucket, "multi.bin") == data
    assert cos.list_multipart_uploads(Bucket=bucket).get("Upload") in (None, [])


def test_multipart_parts_below_one_mib_are_entity_too_small(emulator, cos, bucket):
    upload_id = cos.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    first = cos.upload_part(Bucket=bucket, Key="small", Body=b"a" * 1000, PartNumber=1, UploadId=upload_id)
    second = cos.upload_part(Bucket=bucket, Key="small", Body=b"b" * 10, PartNumber=2, UploadId=upload_id)
    assert first["ETag"] == f'"{md5_hex(b"a" * 1000)}"'
    parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    error = service_error(cos.complete_multipart_upload, Bucket=bucket, Key="small", UploadId=upload_id,
                          MultipartUpload={"Part": parts})
    assert (error.get_status_code(), error.get_error_code()) == (400, "EntityTooSmall")
    assert [part["PartNumber"] for part in cos.list_parts(Bucket=bucket, Key="small", UploadId=upload_id)["Part"]] \
        == ["1", "2"]
    cos.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id)
    error = service_error(cos.upload_part, Bucket=bucket, Key="small", Body=b"c", PartNumber=3, UploadId=upload_id)
    assert (error.get_status_code(), error.get_error_code()) == (404, "NoSuchUpload")
    assert emulator.object_info(bucket, "small") is None


def test_single_part_complete_is_allowed_below_one_mib(emulator, cos, bucket):
    upload_id = cos.create_multipart_upload(Bucket=bucket, Key="one", ContentType="text/plain")["UploadId"]
    part = cos.upload_part(Bucket=bucket, Key="one", Body=b"tiny", PartNumber=1, UploadId=upload_id)
    done = cos.complete_multipart_upload(Bucket=bucket, Key="one", UploadId=upload_id,
                                         MultipartUpload={"Part": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ETag"] == f'"{multipart_etag(b"tiny", MIB)}"'
    assert emulator.object_info(bucket, "one")["content_type"] == "text/plain"


def test_direct_put_with_part_size_looks_multipart(emulator, cos, bucket):
    data = os.urandom(5 * MIB // 2)
    etag = emulator.put_object(bucket, "direct", iter([data[:MIB // 3], data[MIB // 3:]]), part_size=MIB)
    assert etag == multipart_etag(data, MIB)
    assert cos.head_object(Bucket=bucket, Key="direct")["ETag"] == f'"{etag}"'
    assert emulator.object_info(bucket, "direct")["crc64"] == str(crc64_ecma(data))


def test_direct_put_from_a_file_path(emulator, bucket, tmp_path):
    path = tmp_path / "source.bin"
    path.write_bytes(b"from a file")
    etag = emulator.put_object(bucket, "file", str(path), metadata={"origin": "disk"}, last_modified=1_600_000_000.0)
    info = emulator.object_info(bucket, "file")
    assert etag == md5_hex(b"from a file") == info["etag"]
    assert info["metadata"] == {"x-cos-meta-origin": "disk"} and info["last_modified"] == 1_600_000_000.0


def test_sdk_copy_uses_multipart_copy_above_threshold(emulator, client_factory, bucket):
    # Cross-region, so CosS3Client.copy takes its multipart path; the proxy client lets the
    # SDK's own source URL (src-….cos.ap-guangzhou.myqcloud.com) reach the emulator.
    emulator.create_bucket("src-123456789", region="ap-guangzhou")
    data = os.urandom(2 * MIB + 12345)
    emulator.put_object("src-123456789", "in/source file.bin", data)
    client = client_factory(emulator, proxy=True)
    client._conf._copy_part_threshold_size = MIB

    response = client.copy(Bucket=bucket, Key="out/copy.bin", PartSize=1, MAXThread=2,
                           CopySource={"Bucket": "src-123456789", "Key": "in/source file.bin", "Region": "ap-guangzhou"})
    assert response["ETag"] == f'"{multipart_etag(data, MIB)}"'
    assert emulator.object_bytes(bucket, "out/copy.bin") == data
    part_copies = [r for r in emulator.requests if r.method == "PUT" and "partNumber" in r.query]
    assert sorted(r.headers["x-cos-copy-source-range"] for r in part_copies) == [
        f"bytes=0-{MIB - 1}", f"bytes={MIB}-{2 * MIB - 1}", f"bytes={2 * MIB}-{len(data) - 1}",
    ]


# --------------------------------------------------------------------- tagging


def tag_set(tags: dict[str, str]) -> dict:
    return {"TagSet": {"Tag": [{"Key": key, "Value": value} for key, value in tags.items()]}}


def test_tagging_put_get_replace_delete(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    assert cos.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] is None
    cos.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"ci-verify": "verified", "ci-job": "j1"}))
    returned = cos.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]["Tag"]
    assert {tag["Key"]: tag["Value"] for tag in returned} == {"ci-verify": "verified", "ci-job": "j1"}
    cos.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"only": "this"}))
    assert emulator.tags(bucket, "k") == {"only": "this"}
    cos.delete_object_tagging(Bucket=bucket, Key="k")
    assert emulator.tags(bucket, "k") == {}
    assert emulator.tags(bucket, "missing") is None


@pytest.mark.parametrize("tags, rule", [
    ({f"k{index}": "v" for index in range(11)}, "at most 10"),
    ({"k" * 128: "v"}, "1 to 127 bytes"),
    ({"k": "v" * 256}, "1 to 255 bytes"),
    ({"bad#key": "v"}, "only letters"),
    ({"key": "bad*value"}, "only letters"),
])
def test_tagging_limits_are_invalid_tag(emulator, cos, bucket, tags, rule):
    emulator.put_object(bucket, "k", b"x")
    emulator.set_tags(bucket, "k", {"kept": "yes"})
    error = service_error(cos.put_object_tagging, Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert (error.get_status_code(), error.get_error_code()) == (400, "InvalidTag")
    assert rule in error.get_error_msg()
    assert emulator.tags(bucket, "k") == {"kept": "yes"}


def test_tagging_accepts_the_documented_characters(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    tags = {"a1 +-=._:/@": "v2 +-=._:/@", "空": "值"}
    cos.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({**tags}))
    assert emulator.tags(bucket, "k") == tags


def test_tagging_duplicate_keys_and_missing_object(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    duplicate = {"TagSet": {"Tag": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}}
    assert service_error(cos.put_object_tagging, Bucket=bucket, Key="k", Tagging=duplicate).get_error_code() \
        == "InvalidTag"
    error = service_error(cos.put_object_tagging, Bucket=bucket, Key="missing", Tagging=tag_set({"a": "b"}))
    assert (error.get_status_code(), error.get_error_code()) == (404, "NoSuchKey")
    assert service_error(cos.get_object_tagging, Bucket=bucket, Key="missing").get_error_code() == "NoSuchKey"


def test_tagging_header_on_put_and_overwrite_drops_tags(emulator, cos, bucket):
    cos.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b=2")
    assert emulator.tags(bucket, "k") == {"a": "1", "b": "2"}
    cos.put_object(Bucket=bucket, Key="k", Body=b"y")
    assert emulator.tags(bucket, "k") == {}


# ------------------------------------------------------------------------ copy


def copy_source(bucket: str, key: str) -> dict:
    return {"Bucket": bucket, "Key": key, "Region": REGION}


def test_copy_keeps_metadata_and_tags(emulator, cos, bucket):
    data = os.urandom(3 * MIB)
    emulator.put_object(bucket, "src/a 1+ü.mp3", data, content_type="audio/mpeg", metadata={"x-cos-meta-m": "1"},
                        part_size=MIB)
    emulator.set_tags(bucket, "src/a 1+ü.mp3", {"ci-verify": "verified"})

    result = cos.copy_object(Bucket=bucket, Key="dst/a.mp3", CopySource=copy_source(bucket, "src/a 1+ü.mp3"))
    assert result["ETag"] == f'"{md5_hex(data)}"'
    assert result["CRC64"] == str(crc64_ecma(data))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", result["LastModified"])
    info = emulator.object_info(bucket, "dst/a.mp3")
    assert (info["content_type"], info["metadata"], info["etag"]) == ("audio/mpeg", {"x-cos-meta-m": "1"}, md5_hex(data))
    assert emulator.tags(bucket, "dst/a.mp3") == {"ci-verify": "verified"}  # x-cos-tagging-directive: Copy
    assert emulator.object_bytes(bucket, "dst/a.mp3") == data
    assert emulator.tags(bucket, "src/a 1+ü.mp3") == {"ci-verify": "verified"}


def test_copy_replaced_uses_request_metadata(emulator, cos, bucket):
    emulator.put_object(bucket, "src", b"x", content_type="audio/mpeg", metadata={"old": "1"})
    cos.copy_object(Bucket=bucket, Key="dst", CopySource=copy_source(bucket, "src"), CopyStatus="Replaced",
                    ContentType="text/plain", Metadata={"x-cos-meta-new": "2"})
    info = emulator.object_info(bucket, "dst")
    assert (info["content_type"], info["metadata"]) == ("text/plain", {"x-cos-meta-new": "2"})


def test_copy_preconditions(emulator, cos, bucket):
    etag = emulator.put_object(bucket, "src", b"x")
    cos.copy_object(Bucket=bucket, Key="ok", CopySource=copy_source(bucket, "src"), CopySourceIfMatch=etag)
    cos.copy_object(Bucket=bucket, Key="ok2", CopySource=copy_source(bucket, "src"), CopySourceIfMatch=f'"{etag}"')
    for kwargs in ({"CopySourceIfMatch": '"ffff"'}, {"CopySourceIfNoneMatch": etag},
                   {"CopySourceIfModifiedSince": "Sat, 01 Jan 2050 00:00:00 GMT"},
                   {"CopySourceIfUnmodifiedSince": "Sat, 01 Jan 2000 00:00:00 GMT"}):
        error = service_error(cos.copy_object, Bucket=bucket, Key="no", CopySource=copy_source(bucket, "src"), **kwargs)
        assert (error.get_status_code(), error.get_error_code()) == (412, "PreconditionFailed")
    assert emulator.keys(bucket) == ["ok", "ok2", "src"]


def test_copy_from_missing_source(emulator, cos, bucket):
    error = service_error(cos.copy_object, Bucket=bucket, Key="dst", CopySource=copy_source(bucket, "nope"))
    assert (error.get_status_code(), error.get_error_code()) == (404, "NoSuchKey")
    error = service_error(cos.copy_object, Bucket=bucket, Key="dst", CopySource=copy_source("gone-123456789", "k"))
    assert error.get_error_code() == "NoSuchBucket"


# ---------------------------------------------------------------------- faults


def test_fault_503_once_then_success(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    fault = emulator.add_fault(method="GET", key="k", status=503)
    error = service_error(cos.get_object, Bucket=bucket, Key="k")
    assert (error.get_status_code(), error.get_error_code()) == (503, "ServiceUnavailable")
    assert (fault.hits, fault.remaining) == (1, 0)
    assert read_body(cos.get_object(Bucket=bucket, Key="k")) == b"x"
    assert [record.fault for record in emulator.requests] == [True, False]


def test_fault_always_and_custom_code(emulator, cos, bucket):
    fault = emulator.add_fault(method="PUT", key=re.compile(r"^out/"), status=500, code="InternalError", times=None)
    for _ in range(3):
        error = service_error(cos.put_object, Bucket=bucket, Key="out/x", Body=b"x")
        assert (error.get_status_code(), error.get_error_code()) == (500, "InternalError")
    cos.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")
    assert (fault.hits, fault.remaining) == (3, None)
    assert emulator.keys(bucket) == ["elsewhere/x"]
    emulator.clear_faults()
    cos.put_object(Bucket=bucket, Key="out/x", Body=b"x")


def test_fault_delay_then_proceeds(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    emulator.add_fault(method="HEAD", delay=0.3)
    started = time.monotonic()
    cos.head_object(Bucket=bucket, Key="k")
    assert time.monotonic() - started >= 0.3
    record = emulator.requests[-1]
    assert record.status == 200 and record.fault and record.finished - record.started >= 0.3


def test_fault_reset_raises_client_error(emulator, cos, bucket):
    emulator.put_object(bucket, "k", b"x")
    emulator.add_fault(method="GET", reset=True)
    with pytest.raises(CosClientError):
        cos.get_object(Bucket=bucket, Key="k")
    assert (emulator.requests[-1].status, emulator.requests[-1].fault) == (0, True)
    assert read_body(cos.get_object(Bucket=bucket, Key="k")) == b"x"


def test_fault_truncated_get_body(emulator, cos, bucket):
    data = os.urandom(200_000)
    emulator.put_object(bucket, "k", data)
    emulator.add_fault(method="GET", key="k", truncate=1000)
    response = cos.get_object(Bucket=bucket, Key="k")
    assert response["Content-Length"] == str(len(data))
    received = bytearray()
    with pytest.raises(Exception):
        for chunk in response["Body"].get_stream(64 * 1024):
            received += chunk
    assert bytes(received) == data[:len(received)] and len(received) <= 1000
    assert read_body(cos.get_object(Bucket=bucket, Key="k")) == data


def test_fault_copy_error_body(emulator, cos, bucket):
    emulator.put_object(bucket, "src", b"x")
    emulator.add_fault(method="PUT", key="dst", copy_error_body=True)
    error = service_error(cos.copy_object, Bucket=bucket, Key="dst", CopySource=copy_source(bucket, "src"))
    assert error.get_status_code() == 200
    assert "<Code>InternalError</Code>" in error.get_origin_msg().decode()
    assert emulator.object_info(bucket, "dst") is None
    cos.copy_object(Bucket=bucket, Key="dst", CopySource=copy_source(bucket, "src"))
    assert emulator.object_bytes(bucket, "dst") == b"x"


def test_fault_matching_by_query_and_service(emulator, cos, ci, bucket):
    emulator.put_object(bucket, "k", b"x")
    emulator.register_job(bucket, {"JobId": "j1", "Tag": "VoiceSeparate", "State": "Success"})
    emulator.add_fault(query="!", method="GET", status=503, times=None)
    emulator.add_fault(query="tagging", method="PUT", status=503, times=None)
    emulator.add_fault(service="ci", status=500, times=None)

    assert service_error(cos.get_object, Bucket=bucket, Key="k").get_status_code() == 503
    assert cos.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] is None
    assert service_error(cos.put_object_tagging, Bucket=bucket, Key="k",
                         Tagging=tag_set({"a": "b"})).get_status_code() == 503
    assert service_error(ci.ci_get_media_jobs, Bucket=bucket, JobIDs="j1").get_status_code() == 500
    cos.put_object(Bucket=bucket, Key="k2", Body=b"y")


def test_fault_arguments_are_validated(emulator):
    with pytest.raises(ValueError):
        emulator.add_fault(method="PATCH", status=500)
    with pytest.raises(ValueError):
        emulator.add_fault(service="scf", status=500)


# ----------------------------------------------------------------- request log


def test_request_log_records_everything(emulator, cos, client_factory, bucket):
    cos.put_object(Bucket=bucket, Key="a", Body=b"x")
    cos.get_object_tagging(Bucket=bucket, Key="a")
    cos.head_object(Bucket=bucket, Key="a")
    cos.delete_object(Bucket=bucket, Key="a")
    with pytest.raises(CosServiceError):
        client_factory(emulator, secret_key="wrong").get_object(Bucket=bucket, Key="a")
    emulator.put_object(bucket, "direct", b"not logged")

    records = emulator.requests
    assert [(r.method, r.key, r.status, r.is_write) for r in records] == [
        ("PUT", "a", 200, True), ("GET", "a", 200, False), ("HEAD", "a", 200, False),
        ("DELETE", "a", 204, True), ("GET", "a", 403, False),
    ]
    assert all(r.service == "cos" and r.bucket == bucket and not r.fault for r in records)
    assert records[1].query == {"tagging": ""}
    assert records[0].headers["host"] == cos_host(bucket)
    assert all(r.started <= r.finished for r in records)
    emulator.clear_requests()
    assert emulator.requests == []


# -------------------------------------------------------------------------- CI


def voice_separate_job(job_id: str, state: str, created: str, bucket: str = "test-123456789") -> dict:
    return {
        "Code": "Success", "Message": None, "JobId": job_id, "State": state, "Tag": "VoiceSeparate",
        "CreationTime": created, "QueueId": "p1234", "StartTime": created, "EndTime": "-",
        "Operation": {"MediaResult": {"OutputFile": {
            "Bucket": bucket, "Region": REGION, "ObjectName": ["output/bg.mp3", "output/voice.mp3"],
            "Md5Info": [{"Md5": "a" * 32, "ObjectName": "output/bg.mp3"},
                        {"Md5": "b" * 32, "ObjectName": "output/voice.mp3"}],
        }}},
    }


def test_ci_get_jobs(emulator, ci, bucket):
    job = voice_separate_job("j1", "Success", "2022-07-01T10:12:26+0800")
    emulator.register_job(bucket, job)
    response = ci.ci_get_media_jobs(Bucket=bucket, JobIDs="j1")
    assert response["JobsDetail"] == [job]
    assert emulator.requests[-1].service == "ci" and emulator.requests[-1].key == "jobs/j1"

    assert ci.ci_get_media_jobs(Bucket=bucket, JobIDs="nope") == {"NonExistJobIds": "nope"}
    both = ci.ci_get_media_jobs(Bucket=bucket, JobIDs="j1,nope")
    assert both["JobsDetail"][0]["JobId"] == "j1" and both["NonExistJobIds"] == "nope"
    assert "JobsDetail" not in ci.ci_get_media_jobs(Bucket="other-123456789", JobIDs="j1")


def test_ci_list_jobs_filters_and_pages(emulator, ci, bucket):
    for index, state in enumerate(["Success", "Failed", "Success", "Running", "Success"]):
        emulator.register_job(bucket, voice_separate_job(f"j{index}", state, f"2022-07-0{index + 1}T10:00:00+0800"))
    emulator.register_job(bucket, {"JobId": "t1", "Tag": "Transcode", "State": "Success",
                                   "CreationTime": "2022-07-03T10:00:00+0800"})

    def job_ids(**kwargs):
        response = ci.ci_list_media_jobs(Bucket=bucket, Tag="VoiceSeparate", QueueId="p1234", **kwargs)
        return [job["JobId"] for job in response.get("JobsDetail", [])], response["NextToken"]

    assert job_ids() == (["j4", "j3", "j2", "j1", "j0"], None)
    assert job_ids(OrderByTime="Asc", States="Success,Failed") == (["j0", "j1", "j2", "j4"], None)
    # Both bounds are strict: j1 was created at the start and j3 at the end exactly.
    assert job_ids(StartCreationTime="2022-07-02T10:00:00+0800", EndCreationTime="2022-07-04T02:00:00+0000") == (
        ["j2"], None)
    assert job_ids(StartCreationTime="2022-07-02T09:59:59+0800", EndCreationTime="2022-07-04T02:00:01+0000") == (
        ["j3", "j2", "j1"], None)

    seen, token = [], ""
    while True:
        page, token = job_ids(Size=2, NextToken=token)
        seen += page
        if not token:
            break
    assert seen == ["j4", "j3", "j2", "j1", "j0"]
    error = service_error(ci.ci_list_media_jobs, Bucket=bucket, Tag="VoiceSeparate", QueueId="p1234", Size=101)
    assert (error.get_status_code(), error.get_error_code()) == (400, "InvalidArgument")


def test_ci_load_jobs_from_json(emulator, ci, bucket, tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{"bucket": bucket, "JobsDetail": voice_separate_job("jx", "Success", "-")}]))
    assert emulator.load_jobs(path) == 1
    assert ci.ci_get_media_jobs(Bucket=bucket, JobIDs="jx")["JobsDetail"][0]["State"] == "Success"


# ------------------------------------------------------------- large + process


@pytest.mark.slow
def test_large_object_streams_without_buffering(emulator, cos, bucket, tmp_path):
    size, block = 64 * MIB, os.urandom(MIB)
    expected = hashlib.md5(block * 64).hexdigest()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    assert emulator.put_object(bucket, "big", (block for _ in range(64))) == expected
    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        for _ in range(64):
            out.write(block)
    with open(source, "rb") as body:
        assert cos.put_object(Bucket=bucket, Key="big-upload", Body=body)["ETag"] == f'"{expected}"'
    for key in ("big", "big-upload"):
        stream = cos.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream()
        digest, received = hashlib.md5(), 0
        while chunk := stream.read(MIB):
            digest.update(chunk)
            received += len(chunk)
        assert (received, digest.hexdigest()) == (size, expected)

    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert rss_growth < size / 2


def test_stop_removes_its_temporary_root():
    emulator = CosEmulator().start()
    emulator.create_bucket("tmp-123456789")
    emulator.put_object("tmp-123456789", "k", b"x")
    root = emulator.root
    assert root.exists()
    emulator.stop()
    assert not root.exists()


def test_cli_serves_until_sigterm(client_factory, bucket, tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"bucket": bucket, "JobsDetail": [{"JobId": "jc", "Tag": "VoiceSeparate",
                                                                  "State": "Success"}]}]))
    command = [sys.executable, "-m", "localcloud.cos", "--host", "127.0.0.1", "--port", "0",
               "--secret-id", "AKIDcli", "--secret-key", "cli-secret", "--bucket", f"{bucket}:{REGION}",
               "--jobs", str(jobs)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"COS emulator listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line

        class Address:
            port = int(match[1])

        client = client_factory(Address, secret_id="AKIDcli", secret_key="cli-secret")
        client.put_object(Bucket=bucket, Key="k", Body=b"via cli")
        assert read_body(client.get_object(Bucket=bucket, Key="k")) == b"via cli"
        ci = client_factory(Address, secret_id="AKIDcli", secret_key="cli-secret",
                            endpoint=f"ci.{REGION}.myqcloud.com")
        assert ci.ci_get_media_jobs(Bucket=bucket, JobIDs="jc")["JobsDetail"][0]["JobId"] == "jc"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
