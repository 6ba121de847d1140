"""The settings' mechanism: read from environment variables once, at cold start, every problem
named by its variable, so a misconfigured deployment answers 500 with a body a person can act
on instead of failing obscurely on the first callback.

`Settings` is the one type every package takes. Which variables a concern has, and what makes
them valid, lives beside the code that uses them (`<package>/settings.py`, each a `read(reader)`);
`handlers/settings.py`, at the top, composes them. Here: the `Reader` that collects every problem
of one reading, and the primitives (a number in a range, a choice, a flag, an address) they use.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

ANY_BUCKET = "*"
NOTIFY_FORMATS = ("wecom", "dingtalk", "feishu", "json")
NOTIFY_ON_DEFAULT = ("mismatch", "missing", "error", "failed-job")
# The robots' webhook hosts: with NOTIFY_FORMAT unset, a URL on one of them gets its robot's format.
ROBOT_HOSTS = {"qyapi.weixin.qq.com": "wecom", "oapi.dingtalk.com": "dingtalk", "open.feishu.cn": "feishu",
               "open.larksuite.com": "feishu"}
BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+")  # <name>-<appid>
REGION = re.compile(r"[a-z]{2,10}(?:-[a-z0-9]{1,20}){1,3}")
STAND_IN = "unset"  # a required variable's value while the reading goes on past its problem
_PLACEHOLDER = re.compile(r"\$\{(?:env:)?([^}]*)\}")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
T = TypeVar("T")


class ConfigError(ValueError):
    def __init__(self, variable: str, reason: str):
        super().__init__(f"{variable}: {reason}")
        self.variable = variable


class ConfigErrors(ConfigError):
    """Every problem one reading found; `variable` names the first, the message lists them all."""

    def __init__(self, problems: list[ConfigError], hint: str = ""):
        ValueError.__init__(self, "; ".join(str(p) for p in problems) + (f". {hint}" if hint else ""))
        self.variable = problems[0].variable
        self.problems = tuple(problems)


# `dev.py serve` starts the emulators and the function and prints the settings to use with them
# (the emulator's address and keys); its own port is the Function URL, not COS's.
LOCAL_HINT = ("To run it on this machine, against the local COS/CI emulator: `python3 dev.py serve` (or "
              "`python3 dev.py demo`); to point your own run at that emulator, set COS_ENDPOINT, "
              "TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY exactly as `python3 dev.py serve` prints them")


def combined(problems: list[ConfigError], env: Mapping[str, str] | None = None) -> ConfigError:
    """One error for them all: a single problem as it is, several (or a local run) listed together."""
    credentials = {"TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY"} & {p.variable for p in problems}
    hint = LOCAL_HINT if credentials and env is not None and not (env.get("COS_ENDPOINT") or "").strip() else ""
    if len(problems) == 1 and not hint:
        return problems[0]
    return ConfigErrors(problems, hint)


@dataclass(frozen=True)
class Endpoint:
    """A local address every COS and CI request is sent to (the emulator), Host kept virtual."""

    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class Settings:
    """Every setting, as the code uses them; read by handlers/settings.py, which says where each
    concern's variables are read and checked."""

    secret_id: str
    secret_key: str
    token: str | None = None
    cos_endpoint: Endpoint | None = None
    verify_mode: str = "auto"
    hash_callback_url: str = ""  # VERIFY_MODE=server: where CI posts FileHashCode callbacks (empty: the queue's)
    hash_queue_id: str = ""  # VERIFY_MODE=server: the file-processing queue for FileHashCode jobs (empty: CI's)
    hash_jobs_per_version: int = 2  # VERIFY_MODE=server: FileHashCode jobs (billed) started at most per object version
    action_verified: frozenset[str] = frozenset({"tag"})
    action_failed: frozenset[str] = frozenset({"tag"})  # ACTION_MISMATCH (formerly ACTION_FAILED)
    verified_destination: str = "verified/{key}"
    quarantine_destination: str = "quarantine/{key}"
    verified_bucket: str = ""  # empty: the object's own bucket
    quarantine_bucket: str = ""
    multipart_copy_bytes: int = 5 << 30  # COS copies at most 5 GB in one request
    copy_part_bytes: int = 512 << 20
    hash_mib_per_second: int = 20  # a conservative content-hashing speed, to judge what fits the time left
    parallel_read_bytes: int = 32 << 20  # objects this large or larger are read as ranges in parallel
    read_part_bytes: int = 8 << 20
    read_connections: int = 4
    concurrency: int = 16
    max_body_bytes: int = 1 << 20
    cos_timeout: float = 10.0
    retry_after_seconds: int = 30
    log_level: str = "INFO"
    callback_tokens: tuple[str, ...] = ()  # empty: every callback is refused, unless allow_unauthenticated
    allow_unauthenticated: bool = False
    allowed_buckets: frozenset[str] = frozenset()  # empty: not configured; {"*"}: every bucket
    allowed_prefixes: tuple[str, ...] = ()  # empty: every key
    verify_with_ci: bool = True
    dispatch: str = "inline"
    scf_endpoint: Endpoint | None = None
    region: str = ""  # this function's region: for the SCF API and callbacks that name none
    report_prefix: str = ""  # empty: no audit reports
    reconcile_buckets: tuple[tuple[str, str], ...] = ()  # (bucket, region)
    reconcile_tags: tuple[str, ...] = ("VoiceSeparate",)
    reconcile_window_minutes: int = 60
    reconcile_queues: tuple[tuple[str, str], ...] = ()  # (bucket, or "" for every bucket; queue id)
    reconcile_workers: int = 20  # asynchronous invocations a tick may hand jobs to (0: it checks them all itself)
    notify_urls: tuple[str, ...] = ()  # empty: no notifications
    notify_on: frozenset[str] = frozenset(NOTIFY_ON_DEFAULT)  # verdicts and outcomes that trigger a message
    notify_format: str = ""  # wecom | dingtalk | feishu | json; empty: each URL's own, from its host
    notify_secret: str = ""

    def queues_for(self, bucket: str) -> tuple[str, ...]:
        """The media queues RECONCILE_QUEUES names for the bucket; empty: ask CI's queue API."""
        return tuple(dict.fromkeys(queue for where, queue in self.reconcile_queues if where in ("", bucket)))


class Reader:
    """One reading of the environment that goes on past a problem: each method records what is
    wrong with its variable and returns the default (a required one: a stand-in), so one pass
    finds every problem (one per run would take a deployer as many runs to learn them). A
    variable is reported once, by its first problem: a later check that finds it empty or
    defaulted would only repeat it wrongly."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[ConfigError] = []

    def check(self, problem: ConfigError | None) -> None:
        if problem is not None and not self.failed(problem.variable):
            self.problems.append(problem)

    def failed(self, name: str) -> bool:
        return any(p.variable == name for p in self.problems)

    def read(self, parse: Callable[[], T], default: T) -> T:
        """What `parse` makes of the environment, or `default` with its ConfigError recorded."""
        try:
            return parse()
        except ConfigError as exc:
            self.check(exc)
            return default

    def error(self) -> ConfigError:
        return combined(self.problems, self.env)

    def value(self, name: str) -> str:
        return self.read(lambda: value(self.env, name), "")

    def required(self, name: str) -> str:
        return self.read(lambda: required(self.env, name), STAND_IN)

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        return self.read(lambda: choice(self.env, name, allowed, default), default)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self.read(lambda: integer(self.env, name, default, low, high), default)

    def flag(self, name: str, default: bool) -> bool:
        return self.read(lambda: flag(self.env, name, default), default)

    def items(self, name: str) -> list[str]:
        return self.read(lambda: items(self.env, name), [])

    def endpoint(self, name: str) -> Endpoint | None:
        return self.read(lambda: endpoint(self.env, name), None)

    def region(self) -> str:
        return self.read(lambda: region(self.env), "")


# --- primitives: each reads one variable and raises a ConfigError naming it ----------------------

def value(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "").strip()
    placeholder = _PLACEHOLDER.fullmatch(raw)
    if placeholder:
        raise ConfigError(name, f"is {raw}, an unresolved serverless.yml variable: export "
                                f"{placeholder.group(1) or name} (or put it in a .env beside serverless.yml) "
                                "before `scf deploy`")
    return raw


def required(env: Mapping[str, str], name: str) -> str:
    found = value(env, name)
    if not found:
        raise ConfigError(name, "is not set (SCF sets it when the function has an execution role)")
    return found


def choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    found = value(env, name).lower() or default
    if found not in allowed:
        raise ConfigError(name, f"{found!r} is not one of {', '.join(allowed)}")
    return found


def integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = value(env, name)
    if not raw:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(name, f"{number} is outside {low}..{high}")
    return number


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = value(env, name).lower()
    if not raw:
        return default
    if raw not in _TRUE + _FALSE:
        raise ConfigError(name, f"{raw!r} is not true or false")
    return raw in _TRUE


def items(env: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in value(env, name).split(",") if part.strip()]


def endpoint(env: Mapping[str, str], name: str) -> Endpoint | None:
    raw = value(env, name)
    if not raw:
        return None
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or port == -1:
        raise ConfigError(name, f"{raw!r} is not an address like http://127.0.0.1:9000")
    return Endpoint(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def region(env: Mapping[str, str]) -> str:
    """DEFAULT_REGION, else the region SCF runs the function in (it sets TENCENTCLOUD_REGION)."""
    name = "DEFAULT_REGION" if value(env, "DEFAULT_REGION") else "TENCENTCLOUD_REGION"
    found = value(env, name)
    if found and not REGION.fullmatch(found):
        raise ConfigError(name, f"{found!r} is not a region like ap-chongqing")
    return found


def key_prefix(env: Mapping[str, str], name: str) -> str:
    prefix = value(env, name).lstrip("/")
    if prefix and (".." in prefix.split("/") or any(ord(c) < 32 for c in prefix)):
        raise ConfigError(name, f"{prefix!r} is not a usable key prefix")
    return prefix


# --- what the notification code shares with NOTIFY_FORMAT's reading (operations/settings.py) ---------

def notify_format_of(url: str, chosen: str = "") -> str:
    """NOTIFY_FORMAT when set, else the robot whose host the URL names, else Standard Webhooks JSON."""
    return chosen or ROBOT_HOSTS.get((urlsplit(url).hostname or "").lower(), "json")


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret `whsec_<base64>`."""
    return base64.b64decode(secret[len("whsec_"):], validate=True)
