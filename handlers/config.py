"""Settings from environment variables, validated once at cold start.

Every problem names the variable, so a misconfigured deployment answers 500 with a body a
person can act on instead of failing obscurely on the first callback.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

ACTIONS = ("tag", "move")
MAX_CONCURRENCY = 64
DESTINATION_FIELDS = ("key", "jobId", "bucket", "verdict")


NOTIFY_FORMATS = ("wecom", "dingtalk", "feishu", "json")
NOTIFY_ON_DEFAULT = ("mismatch", "missing", "error", "failed-job")
NOTIFY_EVENTS = ("verified", "mismatch", "missing", "superseded", "unverifiable", "error",  # verdicts
                 "failed", "failed-job", "retry", "skipped", "pending")  # outcomes ("verified", "pending": both)
# The robots' webhook hosts: with NOTIFY_FORMAT unset, a URL on one of them gets its robot's format.
ROBOT_HOSTS = {"qyapi.weixin.qq.com": "wecom", "oapi.dingtalk.com": "dingtalk", "open.feishu.cn": "feishu",
               "open.larksuite.com": "feishu"}


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


LOCAL_HINT = ("To run it on this machine, against a local COS emulator: `python3 dev.py serve` (or "
              "`python3 dev.py demo`), or set COS_ENDPOINT=http://127.0.0.1:9000 with the emulator's "
              "TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY (python -m localcloud.cos)")
_STAND_IN = "unset"  # read the remaining settings past a required one that is missing


def combined(problems: list[ConfigError], env: Mapping[str, str] | None = None) -> ConfigError:
    """One error for them all: a single problem as it is, several (or a local run) listed together."""
    credentials = {"TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY"} & {p.variable for p in problems}
    hint = LOCAL_HINT if credentials and env is not None and not _value(env, "COS_ENDPOINT") else ""
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
    secret_id: str
    secret_key: str
    token: str | None = None
    cos_endpoint: Endpoint | None = None
    verify_mode: str = "auto"
    hash_callback_url: str = ""  # VERIFY_MODE=server: where CI posts FileHashCode callbacks (empty: the queue's)
    hash_queue_id: str = ""  # VERIFY_MODE=server: the file-processing queue for FileHashCode jobs (empty: CI's)
    hash_jobs_per_version: int = 2  # VERIFY_MODE=server: FileHashCode jobs (billed) started at most per object version
    action_verified: frozenset[str] = frozenset({"tag"})
    action_failed: frozenset[str] = frozenset({"tag"})
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings, or a ConfigError naming every problem at once (one per run would take
        a deployer as many runs to learn them). After a problem the variable is read as unset
        (its default), then, if it is required, as a stand-in, so that the others are read too."""
        problems: list[ConfigError] = []
        tries: dict[str, int] = {}
        trial = dict(env)
        settings = None
        for _ in range(100):
            try:
                settings = cls._read(trial)
                break
            except ConfigError as exc:
                seen = tries.get(exc.variable, 0)
                tries[exc.variable] = seen + 1
                if seen == 0:
                    problems.append(exc)
                    trial.pop(exc.variable, None)
                elif seen == 1:
                    trial[exc.variable] = _STAND_IN
                else:
                    break
        if not problems and settings is not None:
            return settings
        if settings is not None:
            problems.extend(callback_problems(settings))  # what App would refuse next, said now
        raise combined(problems, env)

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        reconcile_buckets = _reconcile_buckets(env, "RECONCILE_BUCKETS")
        settings = cls(
            secret_id=_required(env, "TENCENTCLOUD_SECRETID"),
            secret_key=_required(env, "TENCENTCLOUD_SECRETKEY"),
            token=env.get("TENCENTCLOUD_SESSIONTOKEN") or None,
            cos_endpoint=_endpoint(env, "COS_ENDPOINT"),
            verify_mode=_choice(env, "VERIFY_MODE", ("auto", "full", "server"), "auto"),
            hash_callback_url=_hash_callback_url(env, "HASH_CALLBACK_URL"),
            hash_queue_id=_value(env, "HASH_QUEUE_ID"),
            hash_jobs_per_version=_integer(env, "HASH_JOBS_PER_VERSION", 2, 1, 10),
            action_verified=_actions(env, "ACTION_VERIFIED"),
            action_failed=_actions(env, "ACTION_FAILED"),
            verified_destination=_destination(env, "VERIFIED_PREFIX", "verified/", "VERIFIED_BUCKET"),
            quarantine_destination=_destination(env, "QUARANTINE_PREFIX", "quarantine/", "QUARANTINE_BUCKET"),
            verified_bucket=_value(env, "VERIFIED_BUCKET"),
            quarantine_bucket=_value(env, "QUARANTINE_BUCKET"),
            multipart_copy_bytes=_integer(env, "MULTIPART_COPY_THRESHOLD_MB", 5120, 2, 5120) << 20,
            copy_part_bytes=_integer(env, "COPY_PART_MB", 512, 1, 5120) << 20,
            hash_mib_per_second=_integer(env, "HASH_MIB_PER_SECOND", 20, 1, 100_000),
            parallel_read_bytes=_integer(env, "PARALLEL_READ_MIN_MB", 32, 1, 5 << 20) << 20,
            read_part_bytes=_integer(env, "READ_PART_MB", 8, 1, 256) << 20,
            read_connections=_integer(env, "READ_CONNECTIONS", 4, 1, 32),
            concurrency=_integer(env, "CONCURRENCY", 16, 1, MAX_CONCURRENCY),
            max_body_bytes=_integer(env, "MAX_BODY_BYTES", 1 << 20, 1024, 64 << 20),
            cos_timeout=float(_integer(env, "COS_TIMEOUT_SECONDS", 10, 1, 300)),
            retry_after_seconds=_integer(env, "RETRY_AFTER_SECONDS", 30, 1, 3600),
            log_level=_choice(env, "LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper(),
            callback_tokens=_tokens(env, "CALLBACK_TOKEN"),
            allow_unauthenticated=_flag(env, "ALLOW_UNAUTHENTICATED", False),
            allowed_buckets=_buckets(env, "ALLOWED_BUCKETS"),
            allowed_prefixes=_prefixes(env, "ALLOWED_PREFIXES"),
            verify_with_ci=_flag(env, "VERIFY_WITH_CI", True),
            dispatch=_choice(env, "DISPATCH", ("inline", "async"), "inline"),
            scf_endpoint=_endpoint(env, "SCF_ENDPOINT"),
            region=_region(env),
            report_prefix=_report_prefix(env, "REPORT_PREFIX"),
            reconcile_buckets=reconcile_buckets,
            reconcile_tags=tuple(_items(env, "RECONCILE_TAGS")) or ("VoiceSeparate",),
            reconcile_window_minutes=_integer(env, "RECONCILE_WINDOW_MINUTES", 60, 1, 7 * 24 * 60),
            reconcile_queues=_reconcile_queues(env, "RECONCILE_QUEUES", reconcile_buckets),
            reconcile_workers=_integer(env, "RECONCILE_WORKERS", 20, 0, 1000),
        )
        settings = replace(settings, **_notifications(env))
        _refuse_moves_onto_themselves(settings)
        return settings


_PLACEHOLDER = re.compile(r"\$\{(?:env:)?([^}]*)\}")


def _value(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "").strip()
    placeholder = _PLACEHOLDER.fullmatch(value)
    if placeholder:
        raise ConfigError(name, f"is {value}, an unresolved serverless.yml variable: export "
                                f"{placeholder.group(1) or name} (or put it in a .env beside serverless.yml) "
                                "before `scf deploy`")
    return value


def _hash_callback_url(env: Mapping[str, str], name: str) -> str:
    value = _value(env, name)
    if value and not re.fullmatch(r"https?://[^\s/]+\S*", value):
        raise ConfigError(name, f"must be an http(s) URL (this function's Function URL, with ?token=...), "
                                f"not {value!r}")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = _value(env, name)
    if not value:
        raise ConfigError(name, "is not set (SCF sets it when the function has an execution role)")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _value(env, name).lower() or default
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _value(env, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(name, f"{value} is outside {low}..{high}")
    return value


def _actions(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = _value(env, name).lower() or "tag"
    if raw == "none":
        return frozenset()
    actions = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = actions - set(ACTIONS)
    if unknown or not actions:
        raise ConfigError(name, f"{raw!r}: use {', '.join(ACTIONS)} or none")
    return actions


def _destination(env: Mapping[str, str], name: str, default: str, bucket_variable: str) -> str:
    """A prefix (`verified/`) or a template naming {key}; stored as a template."""
    raw = env.get(name)
    value = default if raw is None else raw.strip()
    template = value if "{" in value else value + "{key}"
    try:
        probe = template.format(key="k", jobId="j", bucket="b", verdict="v")
    except (KeyError, IndexError, ValueError) as exc:
        fields = ", ".join(DESTINATION_FIELDS)
        raise ConfigError(name, f"{value!r} is not a template of {{{fields}}}: {exc}") from None
    if "{key}" not in template:
        raise ConfigError(name, f"{value!r} must contain {{key}}, or every object would land on one key")
    if probe == "k" and not _value(env, bucket_variable):
        raise ConfigError(name, f"is empty and {bucket_variable} is not set: a move would land on the source itself")
    return template


def lands_on_itself(template: str) -> bool:
    """Whether a destination template maps every key to itself (an empty prefix)."""
    return template.format(key="k", jobId="j", bucket="b", verdict="v") == "k"


def _refuse_moves_onto_themselves(settings: Settings) -> None:
    """An empty prefix into a bucket that callbacks may name moves those outputs onto
    themselves. Known at cold start when that bucket is listed in ALLOWED_BUCKETS; with `*`
    it is not (an object already at its destination is then simply tagged in place)."""
    for actions, template, bucket, prefix, bucket_variable in (
            (settings.action_verified, settings.verified_destination, settings.verified_bucket,
             "VERIFIED_PREFIX", "VERIFIED_BUCKET"),
            (settings.action_failed, settings.quarantine_destination, settings.quarantine_bucket,
             "QUARANTINE_PREFIX", "QUARANTINE_BUCKET")):
        if "move" in actions and bucket in settings.allowed_buckets and lands_on_itself(template):
            raise ConfigError(prefix, f"is empty and {bucket_variable}={bucket} is in ALLOWED_BUCKETS: its outputs "
                                      "would be moved onto themselves; set a prefix or another bucket")


def _endpoint(env: Mapping[str, str], name: str) -> Endpoint | None:
    raw = _value(env, name)
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


# --- callback security (CALLBACK_TOKEN, ALLOWED_BUCKETS, ...) ----------------------------

ANY_BUCKET = "*"
MIN_TOKEN_LENGTH = 8
_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved URL characters: a token goes into the URL as is
_BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+")  # <name>-<appid>
_REGION = re.compile(r"[a-z]{2,10}(?:-[a-z0-9]{1,20}){1,3}")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def callback_problems(settings: Settings) -> list[ConfigError]:
    """What makes every callback unanswerable, each named by its variable (pure)."""
    problems = []
    if settings.callback_tokens and settings.allow_unauthenticated:
        problems.append(ConfigError("ALLOW_UNAUTHENTICATED", "is true while CALLBACK_TOKEN is set: remove one, "
                                                             "so it is clear whether callers need the token"))
    if not settings.callback_tokens and not settings.allow_unauthenticated:
        problems.append(ConfigError("CALLBACK_TOKEN", "is not set, so every callback is refused: set a secret "
                                                      "token and add it to the callback URL (?token=...), or set "
                                                      "ALLOW_UNAUTHENTICATED=true to accept callbacks from anyone"))
    if not settings.allowed_buckets:
        problems.append(ConfigError("ALLOWED_BUCKETS", f"is not set: list the buckets callbacks may name, "
                                                       f"or write '{ANY_BUCKET}' to allow every bucket"))
    return problems


def _items(env: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in _value(env, name).split(",") if part.strip()]


def _tokens(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    tokens = _items(env, name)
    for token in tokens:
        if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
            # Never echo the value: it is a secret, and this message is logged and answered.
            raise ConfigError(name, f"each token needs at least {MIN_TOKEN_LENGTH} characters from "
                                    "A-Z a-z 0-9 . _ ~ - (a token goes into the callback URL as is)")
    return tuple(tokens)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _value(env, name).lower()
    if not raw:
        return default
    if raw not in _TRUE + _FALSE:
        raise ConfigError(name, f"{raw!r} is not true or false")
    return raw in _TRUE


def _buckets(env: Mapping[str, str], name: str) -> frozenset[str]:
    buckets = _items(env, name)
    if ANY_BUCKET in buckets and len(buckets) > 1:
        raise ConfigError(name, f"'{ANY_BUCKET}' allows every bucket: write it alone, or list bucket names")
    for bucket in buckets:
        if bucket != ANY_BUCKET and not _BUCKET.fullmatch(bucket):
            raise ConfigError(name, f"{bucket!r} is not a bucket name like examplebucket-1250000000")
    return frozenset(buckets)


def _prefixes(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    prefixes = tuple(part.lstrip("/") for part in _items(env, name))
    if any(not prefix for prefix in prefixes):
        raise ConfigError(name, "'/' alone would allow every key: leave the variable unset instead")
    return prefixes


def _region(env: Mapping[str, str]) -> str:
    """DEFAULT_REGION, else the region SCF runs the function in (it sets TENCENTCLOUD_REGION)."""
    name = "DEFAULT_REGION" if _value(env, "DEFAULT_REGION") else "TENCENTCLOUD_REGION"
    region = _value(env, name)
    if region and not _REGION.fullmatch(region):
        raise ConfigError(name, f"{region!r} is not a region like ap-chongqing")
    return region


def _report_prefix(env: Mapping[str, str], name: str) -> str:
    prefix = _value(env, name).lstrip("/")
    if prefix and (".." in prefix.split("/") or any(ord(c) < 32 for c in prefix)):
        raise ConfigError(name, f"{prefix!r} is not a usable key prefix")
    return prefix


def _reconcile_buckets(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """`bucket` or `bucket:region` entries; unset: the ALLOWED_BUCKETS list, in this region."""
    region = _region(env)
    entries = _items(env, name)
    if not entries:
        allowed = _buckets(env, "ALLOWED_BUCKETS")
        if ANY_BUCKET in allowed or not region:
            return ()
        return tuple((bucket, region) for bucket in sorted(allowed))
    pairs = []
    for entry in entries:
        bucket, _, own_region = entry.partition(":")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(name, f"{bucket!r} is not a bucket name like examplebucket-1250000000")
        if not (own_region or region):
            raise ConfigError(name, f"{entry!r} names no region and neither DEFAULT_REGION nor "
                                    "TENCENTCLOUD_REGION is set")
        if own_region and not _REGION.fullmatch(own_region):
            raise ConfigError(name, f"{own_region!r} is not a region like ap-chongqing")
        pairs.append((bucket, own_region or region))
    return tuple(pairs)


_QUEUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # CI's media queue ids: `p` and 32 hex digits


def _reconcile_queues(env: Mapping[str, str], name: str,
                      buckets: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`queueId` (a queue of every swept bucket) or `bucket:queueId` entries; unset: CI's queue API says."""
    swept = {bucket for bucket, _ in buckets}
    entries = []
    for entry in _items(env, name):
        bucket, _, queue = entry.rpartition(":")
        if not _QUEUE_ID.fullmatch(queue):
            raise ConfigError(name, f"{queue!r} is not a CI queue id like p0123456789abcdef0123456789abcdef")
        if bucket and not _BUCKET.fullmatch(bucket):
            raise ConfigError(name, f"{bucket!r} is not a bucket name like examplebucket-1250000000")
        if bucket and bucket not in swept:
            raise ConfigError(name, f"{entry!r} names bucket {bucket!r}, which RECONCILE_BUCKETS does not sweep")
        entries.append((bucket, queue))
    return tuple(entries)


# --- notifications (NOTIFY_URL, NOTIFY_ON, NOTIFY_FORMAT, NOTIFY_SECRET) ----------------------

MIN_WEBHOOK_SECRET_BYTES, MAX_WEBHOOK_SECRET_BYTES = 24, 64  # Standard Webhooks: 24 bytes at least


def _notifications(env: Mapping[str, str]) -> dict[str, Any]:
    urls = tuple(_items(env, "NOTIFY_URL"))
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Never echo the URL: a robot's webhook URL carries its credential (key=, access_token=).
            raise ConfigError("NOTIFY_URL", "each entry must be an http:// or https:// address")
    events = frozenset(item.lower() for item in _items(env, "NOTIFY_ON")) or frozenset(NOTIFY_ON_DEFAULT)
    unknown = sorted(events - set(NOTIFY_EVENTS))
    if unknown:
        raise ConfigError("NOTIFY_ON", f"{', '.join(unknown)}: use the verdicts and outcomes "
                                       f"{', '.join(NOTIFY_EVENTS)}")
    chosen = _value(env, "NOTIFY_FORMAT").lower()
    if chosen and chosen not in NOTIFY_FORMATS:
        raise ConfigError("NOTIFY_FORMAT", f"{chosen!r} is not one of {', '.join(NOTIFY_FORMATS)}")
    secret = _value(env, "NOTIFY_SECRET")
    formats = {chosen or notify_format_of(url) for url in urls}
    if secret and formats == {"wecom"}:
        raise ConfigError("NOTIFY_SECRET", "WeCom group robots sign nothing: the key in NOTIFY_URL is their credential")
    if "json" in formats:
        _webhook_secret(secret)
    return {"notify_urls": urls, "notify_on": events, "notify_format": chosen, "notify_secret": secret}


def notify_format_of(url: str, chosen: str = "") -> str:
    """NOTIFY_FORMAT when set, else the robot whose host the URL names, else Standard Webhooks JSON."""
    return chosen or ROBOT_HOSTS.get((urlsplit(url).hostname or "").lower(), "json")


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret `whsec_<base64>`."""
    return base64.b64decode(secret[len("whsec_"):], validate=True)


def _webhook_secret(secret: str) -> None:
    hint = "a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes"
    if secret == _STAND_IN:  # from_env reading past this problem to the others
        return
    if not secret:
        raise ConfigError("NOTIFY_SECRET", f"is needed to sign json notifications; set {hint}")
    if not secret.startswith("whsec_"):
        raise ConfigError("NOTIFY_SECRET", f"is not {hint}")
    try:
        key = webhook_key(secret)
    except (binascii.Error, ValueError):
        raise ConfigError("NOTIFY_SECRET", f"is not {hint} (the part after whsec_ is not base64)") from None
    if not MIN_WEBHOOK_SECRET_BYTES <= len(key) <= MAX_WEBHOOK_SECRET_BYTES:
        raise ConfigError("NOTIFY_SECRET", f"decodes to {len(key)} bytes; {hint}")
