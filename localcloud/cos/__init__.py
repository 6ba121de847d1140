"""A local emulator of Tencent COS's XML API and CI's media-job API, for tests, benchmarks and demos.

    from localcloud.cos import CosEmulator
    with CosEmulator(secret_id="AKIDlocal", secret_key="local-secret") as emu:
        emu.create_bucket("test-123456789", region="ap-chongqing")
        # cos-python-sdk-v5: CosConfig(Region=..., IP="127.0.0.1", Port=emu.port, Scheme="http", ...);
        # CI calls need their own client with Endpoint="ci.<region>.myqcloud.com".

Requests are routed by their Host header (`<bucket>.cos.<region>.myqcloud.com`, `<bucket>.ci.<region>...`),
also when the emulator is used as an HTTP proxy (`CosConfig(Proxies={"http": emu.endpoint})`), which lets
URLs the SDK builds itself (the source HEAD of a cross-region `copy`) reach it.

Behaviour worth knowing:
- A bucket answers only on its own region's host; another region gets 404 NoSuchBucket, as on COS.
- A missing or wrong session token (when the emulator has one) is 403 `InvalidToken`.
- PUT Object - Copy carries the source's tags (`x-cos-tagging-directive: Copy`, the default) or the
  request's `x-cos-tagging` (`Replaced`); a multipart copy (Upload Part - Copy) starts untagged. A copy's
  ETag is the content MD5, even when the source was multipart. Same-region copies have no size limit
  (the SDK's `copy` relies on that).
- Tag keys and values are limited in UTF-8 bytes (1–127, 1–255): an empty value is `InvalidTag`.
- A `copy_error_body` fault answers PUT Object - Copy or Upload Part - Copy with 200 and an error body.
- `Range: bytes=N-` with N at or past the end is 416 `InvalidRange`.
- CI: the job list needs `queueId`; every job runs in a queue (`DEFAULT_QUEUE_ID` when registered
  without one) and GET /queue lists the bucket's queues (`declare_queue` adds one).
- Overwriting an object drops its tags (unless the PUT sends `x-cos-tagging`).
- HEAD/GET answers carry no tag-count header (COS documents none).
- Unsupported sub-resources (`?acl`, `?versionId`, ...) answer 501 NotImplemented rather than being
  mistaken for uploads.
- The request log records a request when its answer is ready, just before it is sent: a client that has
  its response always finds the record; `finished` excludes the time spent streaming a GET body.
- A fault is consumed when a request matches it, even if its action cannot apply to that request;
  `RequestRecord.fault` is True for every request a fault matched.
- The direct-access methods (put_object, set_tags, keys) raise KeyError for a missing bucket or object.
"""
from .emulator import CosEmulator
from .faults import Fault, RequestRecord

__all__ = ["CosEmulator", "Fault", "RequestRecord"]
