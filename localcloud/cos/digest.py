"""Checksums COS reports: MD5 ETags (plain and multipart) and CRC-64/ECMA (x-cos-hash-crc64ecma)."""
from __future__ import annotations

import hashlib

import crcmod

_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)


def crc64(data: bytes) -> str:
    return str(_crc64(data))


class ContentDigest:
    """MD5 and CRC-64 of a stream, updated chunk by chunk so content is never re-read."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5()
        self._crc = _crc64(b"")
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        self._crc = _crc64(chunk, self._crc)
        self.size += len(chunk)

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    @property
    def md5_digest(self) -> bytes:
        return self._md5.digest()

    @property
    def crc64(self) -> str:
        return str(self._crc)


def multipart_etag(part_md5_digests: list[bytes]) -> str:
    """ETag of a multipart object: MD5 of the concatenated binary part MD5s, then `-<part count>`."""
    return f"{hashlib.md5(b''.join(part_md5_digests)).hexdigest()}-{len(part_md5_digests)}"
