"""The one place that builds COS and CI clients: credentials, endpoint, one connection pool sized for our
concurrency, and every exchange bounded as a whole (handlers/exchange.py)."""
from __future__ import annotations

import logging
import os
import threading
import urllib.request
from typing import Any

import requests
from qcloud_cos import CosConfig, CosS3Client

from handlers import exchange
from handlers.config import Settings
from handlers.deadline import MIN_ATTEMPT_SECONDS, Deadline
from handlers.errors import TransientError

_CLIENTS_KEPT = 64  # clients per deadline: an invocation uses a few (its own, the notifications' budget)

# At DEBUG the SDK logs request headers, security token included, and at ERROR every 4xx,
# expected ones too (a missing object's tag read). Every failure reaches our own log and
# response through TransientError/StorageError, so the SDK stays quiet.
logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)


class Clients:
    """COS and CI clients per region, sharing one connection pool sized for our concurrency.
    Each request is bounded as a whole (handlers/exchange.py): COS_TIMEOUT_SECONDS for the
    exchange, never past the invocation's deadline. An object's content read for its hash
    (`content=True`) is the one answer whose body the deadline alone bounds; every other, the
    SDK's streamed ones included (an audit report, the synchronous filehash), is cut at
    COS_TIMEOUT_SECONDS like a HEAD."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._session = requests.Session()
        _read_environment_once(self._session)
        # Object checks and tag reads run side by side, and a big object's check reads on
        # READ_CONNECTIONS connections of its own: a connection for each keeps them all alive.
        pool = settings.concurrency * (1 + settings.read_connections) + 4
        exchange.mount(self._session, exchange.BoundedAdapter(pool_connections=8, pool_maxsize=pool))
        self._clients: dict[tuple[str, str, exchange.Limit], CosS3Client] = {}
        self._lock = threading.Lock()

    def cos(self, region: str, deadline: Deadline | None = None, content: bool = False) -> CosS3Client:
        return self._client("cos", region, self._limit(deadline, content))

    def ci(self, region: str, deadline: Deadline | None = None) -> CosS3Client:
        return self._client("ci", region, self._limit(deadline))

    def _limit(self, deadline: Deadline | None, content: bool = False) -> exchange.Limit:
        """COS_TIMEOUT_SECONDS for each exchange, and never past the deadline: no request outlives
        it. `content`: the body may stream until the deadline (exchange.Limit)."""
        if deadline is None:
            return exchange.Limit(self._settings.cos_timeout)
        if deadline.remaining() < MIN_ATTEMPT_SECONDS:
            raise TransientError("the invocation's time is up; nothing more was sent")
        return exchange.Limit(self._settings.cos_timeout, deadline.at, content)

    def _client(self, service: str, region: str, limit: exchange.Limit) -> CosS3Client:
        # The SDK fixes a client's timeout (the limit the adapter applies) at construction;
        # clients are cheap and share the session: one per deadline in use, the last few kept.
        with self._lock:
            client = self._clients.get((service, region, limit))
            if client is None:
                if len(self._clients) >= _CLIENTS_KEPT:
                    del self._clients[next(iter(self._clients))]
                client = CosS3Client(self._config(service, region, limit), retry=0, session=self._session)
                self._clients[(service, region, limit)] = client
            return client

    def _config(self, service: str, region: str, timeout: exchange.Limit) -> CosConfig:
        s = self._settings
        # Timeout goes to requests untouched, and the session's BoundedAdapter reads the Limit.
        options: dict[str, Any] = dict(Region=region, SecretId=s.secret_id, SecretKey=s.secret_key, Token=s.token,
                                       Timeout=timeout, Scheme="https")
        if service == "ci":
            # With IP/Port set the SDK builds Host from Endpoint; name the CI service there.
            options["Endpoint"] = f"ci.{region}.myqcloud.com"
        if s.cos_endpoint is not None:
            options.update(Scheme=s.cos_endpoint.scheme, IP=s.cos_endpoint.host, Port=s.cos_endpoint.port)
        return CosConfig(**options)


def _read_environment_once(session: requests.Session) -> None:
    """requests reads proxies, a CA bundle and ~/.netrc from the environment again for every
    request: scanning os.environ twice costs a tenth of the CPU a request takes, and a callback
    with many outputs is bound by that CPU (bench/: critical path). The environment does not
    change during a container's life: with no proxy or .netrc (whose rules depend on each URL),
    read the CA bundle here, once."""
    if urllib.request.getproxies() or _netrc_file_exists():
        return
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False


def _netrc_file_exists() -> bool:
    named = os.environ.get("NETRC")
    candidates = (named,) if named is not None else ("~/.netrc", "~/_netrc")
    return any(os.path.exists(os.path.expanduser(path)) for path in candidates)
