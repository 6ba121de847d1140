"""The emulator's CI hash calculation through cos-python-sdk-v5: file_hash (sync, < 128 MB),
ci_create_file_hash_job (POST /file_jobs, hashed in the background, called back) and
ci_get_file_process_jobs (GET /file_jobs/<ids>)."""
from __future__ import annotations

import hashlib

import pytest
import xmltodict
from qcloud_cos.cos_exception import CosServiceError

from localcloud.cos.file_jobs import SYNC_LIMIT, FileJobCallback

DATA = b"bytes CI hashes itself" * 1000


def test_sync_file_hash_answers_the_md5_size_and_quoted_etag(emulator, cos, bucket):
    etag = emulator.put_object(bucket, "out/a.mp3", DATA, part_size=1 << 20)
    answer = cos.file_hash(Bucket=bucket, Key="out/a.mp3", Type="md5", AddToHeader=False)
    result = answer["FileHashCodeResult"]
    assert result["MD5"] == hashlib.md5(DATA).hexdigest() != etag
    assert result["FileSize"] == str(len(DATA)) and result["Etag"] == f'"{etag}"'
    assert answer["Input"] == {"Bucket": bucket, "Object": "out/a.mp3", "Region": "ap-chongqing"}
    assert cos.file_hash(Bucket=bucket, Key="out/a.mp3", Type="sha256")["FileHashCodeResult"]["SHA256"] == \
        hashlib.sha256(DATA).hexdigest()


@pytest.mark.slow
def test_sync_file_hash_refuses_128_mb_and_a_missing_key(emulator, cos, bucket):
    emulator.put_object(bucket, "big", (b"\0" * (1 << 20) for _ in range(SYNC_LIMIT >> 20)))
    with pytest.raises(CosServiceError) as error:
        cos.file_hash(Bucket=bucket, Key="big", Type="md5")
    assert (error.value.get_status_code(), error.value.get_error_code()) == (400, "InvalidArgument")
    assert "128 MB" in error.value.get_error_msg()
    with pytest.raises(CosServiceError) as error:
        cos.file_hash(Bucket=bucket, Key="nothing", Type="md5")
    assert error.value.get_status_code() == 404


def test_a_file_hash_job_is_hashed_in_the_background_and_called_back(emulator, ci, bucket):
    etag = emulator.put_object(bucket, "out/big.wav", DATA, part_size=1 << 20)
    delivered: list[FileJobCallback] = []
    emulator.callback_sink = delivered.append
    emulator.file_job_delay = 0.2
    created = ci.ci_create_file_hash_job(Bucket=bucket, InputObject="out/big.wav",
                                         FileHashCodeConfig={"Type": "MD5", "AddToHeader": "false"},
                                         CallBack="http://127.0.0.1:9/cb", UserData="cvh1|abc")
    job = created["JobsDetail"]
    assert job["State"] == "Submitted" and job["Tag"] == "FileHashCode" and job["JobId"].startswith("f")
    assert "FileHashCodeResult" not in job["Operation"]
    emulator.wait_for_file_jobs()
    [described] = ci.ci_get_file_process_jobs(Bucket=bucket, JobIDs=job["JobId"])["JobsDetail"]  # SDK: a list
    assert described["State"] == "Success" and described["Operation"]["UserData"] == "cvh1|abc"
    assert described["Operation"]["FileHashCodeResult"]["MD5"] == hashlib.md5(DATA).hexdigest()
    assert described["Operation"]["FileHashCodeResult"]["Etag"] == f'"{etag}"'
    [callback] = delivered
    assert callback.url == "http://127.0.0.1:9/cb" and callback.content_type == "application/xml"
    posted = xmltodict.parse(callback.body)["Response"]
    assert posted["EventName"] == "TaskFinish" and posted["JobsDetail"]["JobId"] == job["JobId"]
    assert posted["JobsDetail"]["Input"] == {"BucketId": bucket, "Object": "out/big.wav", "Region": "ap-chongqing"}


def test_file_job_query_names_unknown_ids_and_a_missing_input_fails(emulator, ci, bucket):
    emulator.callback_sink = lambda callback: None  # lost
    job = ci.ci_create_file_hash_job(Bucket=bucket, InputObject="gone", FileHashCodeConfig={"Type": "MD5"})
    emulator.wait_for_file_jobs()
    job_id = job["JobsDetail"]["JobId"]
    answer = ci.ci_get_file_process_jobs(Bucket=bucket, JobIDs=f"{job_id},fnothing")
    [failed] = answer["JobsDetail"]
    assert failed["State"] == "Failed" and failed["Code"] == "NoSuchKey"
    assert "fnothing" in answer["NonExistJobIds"]


def test_user_data_over_1024_characters_or_not_printable_ascii_is_refused(emulator, ci, bucket):
    for user_data in ("x" * 1025, "caf\u00e9"):
        with pytest.raises(CosServiceError) as error:
            ci.ci_create_file_hash_job(Bucket=bucket, InputObject="a", FileHashCodeConfig={"Type": "MD5"},
                                       UserData=user_data)
        assert error.value.get_status_code() == 400
    assert emulator.file_jobs_created == 0
