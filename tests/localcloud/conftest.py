"""Fixtures for the COS emulator's own tests: a fresh emulator per test and real SDK clients."""
from __future__ import annotations

import logging

import pytest
from qcloud_cos import CosConfig, CosS3Client

from localcloud.cos import CosEmulator

SECRET_ID = "AKIDlocal"
SECRET_KEY = "local-secret"
REGION = "ap-chongqing"
BUCKET = "test-123456789"

# The SDK logs every failed request at ERROR/WARNING; these tests provoke many on purpose.
logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)


@pytest.fixture
def bucket() -> str:
    return BUCKET


@pytest.fixture
def emulator():
    with CosEmulator(secret_id=SECRET_ID, secret_key=SECRET_KEY) as emu:
        emu.create_bucket(BUCKET, region=REGION)
        yield emu


@pytest.fixture
def client_factory():
    """make(emulator, secret_id=..., secret_key=..., token=..., endpoint=..., region=..., proxy=False).

    proxy=True sends every request through the emulator as an HTTP proxy instead of setting IP/Port,
    so even URLs the SDK builds itself (cross-region copy) reach it with their real Host.
    """

    def make(emulator: CosEmulator, *, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY,
             token: str | None = None, endpoint: str | None = None, region: str = REGION,
             proxy: bool = False) -> CosS3Client:
        address = {"Proxies": {"http": emulator.endpoint}} if proxy else {"IP": "127.0.0.1", "Port": emulator.port}
        config = CosConfig(Region=region, SecretId=secret_id, SecretKey=secret_key, Token=token, Scheme="http",
                           Endpoint=endpoint, **address)
        return CosS3Client(config, retry=0)

    return make


@pytest.fixture
def cos(emulator, client_factory):
    return client_factory(emulator)


@pytest.fixture
def ci(emulator, client_factory):
    return client_factory(emulator, endpoint=f"ci.{REGION}.myqcloud.com")
