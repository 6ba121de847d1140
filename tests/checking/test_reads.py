"""Content reads for a hash (handlers/checking/reads.py): streamed through MD5 on a thread of its own."""
from __future__ import annotations

import hashlib
import threading

import pytest

from handlers.checking.reads import ContentReader, _Md5Behind
from handlers.deadline import Deadline
from handlers.errors import TransientError
from handlers.intake.models import OutputObject
from handlers.settings import Settings
from handlers.storage.clients import Clients
from tests.conftest import function_env
from tests.samples import BUCKET, REGION


def test_md5_behind_hashes_every_chunk_and_ends_its_thread():
    chunks = [bytes([i]) * (1 << 20) for i in range(5)] + [b"tail"]
    digest = _Md5Behind()
    for chunk in chunks:
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.md5(b"".join(chunks)).hexdigest()
    assert not [t for t in threading.enumerate() if t.name == "md5"]


def test_a_broken_stream_leaves_no_hashing_thread(emulator):
    data = bytes(range(256)) * 8192
    etag = emulator.put_object(BUCKET, "out/a", data, part_size=1 << 20)
    emulator.add_fault(method="GET", key="out/a", query="!", truncate=1000, times=None)
    settings = Settings.from_env(function_env(emulator))
    reader = ContentReader(Clients(settings), settings).bound(Deadline.after(30))
    with pytest.raises(TransientError, match=r"got 1000 of 2097152 bytes|failed after"):
        reader.content_md5(OutputObject(BUCKET, REGION, "out/a", None), etag)
    assert not [t for t in threading.enumerate() if t.name == "md5"]


def test_content_md5_is_the_md5_of_the_content(emulator):
    data = bytes(range(256)) * 12345
    etag = emulator.put_object(BUCKET, "out/a", data, part_size=1 << 20)
    settings = Settings.from_env(function_env(emulator))
    reader = ContentReader(Clients(settings), settings).bound(Deadline.after(30))
    assert reader.content_md5(OutputObject(BUCKET, REGION, "out/a", None), etag) == hashlib.md5(data).hexdigest()
