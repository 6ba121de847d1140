"""The emulator's per-connection bandwidth limit and faults aimed at one byte range, through the SDK."""
from __future__ import annotations

import threading
import time

import pytest
from urllib3.exceptions import ProtocolError

MIB = 1 << 20


def _read(cos, bucket: str, key: str, byte_range: str | None = None) -> bytes:
    options = {"Range": byte_range} if byte_range else {}
    return cos.get_object(Bucket=bucket, Key=key, **options)["Body"].get_raw_stream().read()


def test_each_connection_is_limited_and_connections_add_up(emulator, client_factory, bucket):
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB
    emulator.put_object(bucket, "k", data)
    emulator.limit_bandwidth(16 * MIB)
    cos = client_factory(emulator)
    started = time.monotonic()
    assert _read(cos, bucket, "k") == data
    one = time.monotonic() - started
    assert one >= 0.45, f"8 MiB at 16 MiB/s took {one:.2f} s"

    # Four connections, a quarter each, at the same time: about a quarter of the time.
    quarters = [f"bytes={i * 2 * MIB}-{(i + 1) * 2 * MIB - 1}" for i in range(4)]
    clients = [client_factory(emulator) for _ in quarters]
    parts: dict[int, bytes] = {}
    threads = [threading.Thread(target=lambda i=i: parts.__setitem__(i, _read(clients[i], bucket, "k", quarters[i])))
               for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    four = time.monotonic() - started
    assert b"".join(parts[i] for i in range(4)) == data
    assert four < one * 0.6, f"four connections took {four:.2f} s, one {one:.2f} s"
    assert emulator.bandwidth_per_connection == 16 * MIB


def test_no_limit_by_default_and_a_limit_can_be_lifted(emulator, cos, bucket):
    assert emulator.bandwidth_per_connection is None
    emulator.limit_bandwidth(1)
    emulator.limit_bandwidth(None)
    emulator.put_object(bucket, "k", b"x" * MIB)
    assert _read(cos, bucket, "k") == b"x" * MIB
    with pytest.raises(ValueError):
        emulator.limit_bandwidth(0)


def test_a_fault_can_aim_at_one_range_and_reset_it_mid_transfer(emulator, cos, bucket):
    data = bytes(range(256)) * 4096  # 1 MiB
    emulator.put_object(bucket, "k", data)
    fault = emulator.add_fault(method="GET", key="k", byte_range="bytes=524288-1048575", truncate=1000, reset=True)
    assert _read(cos, bucket, "k", "bytes=0-524287") == data[:524288]  # another range: untouched
    assert _read(cos, bucket, "k") == data  # no Range header: untouched
    assert fault.hits == 0
    with pytest.raises(ProtocolError):  # the body broke off: urllib3's IncompleteRead / connection reset
        _read(cos, bucket, "k", "bytes=524288-1048575")
    assert fault.hits == 1
    assert [r.status for r in emulator.requests][-1] == 206
    assert _read(cos, bucket, "k", "bytes=524288-1048575") == data[524288:]  # used up: served again
