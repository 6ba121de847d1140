"""The naive verifier the figures are compared with: what a first version would do with the
same SDK. It checks the objects one after another, reads a body whole into memory to hash
it, and reads then writes each object's tags in turn. Correct, but every request waits for
the one before it."""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import xmltodict
from qcloud_cos import CosConfig, CosS3Client


class NaiveVerifier:
    def __init__(self, endpoint: str, secret_id: str, secret_key: str, token: str, region: str):
        address = urlsplit(endpoint)
        self._client = CosS3Client(CosConfig(Region=region, SecretId=secret_id, SecretKey=secret_key, Token=token,
                                             Scheme=address.scheme, IP=address.hostname, Port=address.port))

    def handle(self, body: bytes) -> list[str]:
        """The verdict on every object the callback reports, in order."""
        job = xmltodict.parse(body)["Response"]["JobsDetail"]
        verdicts = []
        for output in _as_list(job["Operation"]["MediaResult"]["OutputFile"]):
            for info in _as_list(output["Md5Info"]):
                verdict = self._check(output["Bucket"], info["ObjectName"].lstrip("/"), info["Md5"].lower())
                self._tag(output["Bucket"], info["ObjectName"].lstrip("/"), verdict, job["JobId"])
                verdicts.append(verdict)
        return verdicts

    def _check(self, bucket: str, key: str, md5: str) -> str:
        etag = self._client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        if etag == md5:
            return "verified"
        content = self._client.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream().read()
        return "verified" if hashlib.md5(content).hexdigest() == md5 else "mismatch"

    def _tag(self, bucket: str, key: str, verdict: str, job_id: str) -> None:
        found = self._client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet") or {}
        tags = {t["Key"]: t.get("Value") or "" for t in _as_list(found.get("Tag"))}
        tags.update({"ci-verify": verdict, "ci-job": job_id})
        self._client.put_object_tagging(Bucket=bucket, Key=key, Tagging={
            "TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}})


def _as_list(node: Any) -> list:
    if node is None:
        return []
    return node if isinstance(node, list) else [node]
