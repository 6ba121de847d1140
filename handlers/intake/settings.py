"""Who may call and what a callback may name (CALLBACK_TOKEN, ALLOW_UNAUTHENTICATED,
ALLOWED_BUCKETS, ALLOWED_PREFIXES), how large a body may be, and how a callback is dispatched."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from handlers.config import ANY_BUCKET, BUCKET, ConfigError, Reader, Settings, items

MIN_TOKEN_LENGTH = 8
_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved URL characters: a token goes into the URL as is


def read(reader: Reader) -> dict[str, Any]:
    env = reader.env
    none: tuple[str, ...] = ()
    return {
        "max_body_bytes": reader.integer("MAX_BODY_BYTES", 1 << 20, 1024, 64 << 20),
        "callback_tokens": reader.read(lambda: tokens(env, "CALLBACK_TOKEN"), none),
        "allow_unauthenticated": reader.flag("ALLOW_UNAUTHENTICATED", False),
        "allowed_buckets": reader.read(lambda: buckets(env, "ALLOWED_BUCKETS"), frozenset(none)),
        "allowed_prefixes": reader.read(lambda: prefixes(env, "ALLOWED_PREFIXES"), none),
        "dispatch": reader.choice("DISPATCH", ("inline", "async"), "inline"),
        "scf_endpoint": reader.endpoint("SCF_ENDPOINT"),
    }


def callback_problems(settings: Settings, reported: tuple[str, ...] = ()) -> list[ConfigError]:
    """What makes every callback unanswerable, each named by its variable (pure). A variable in
    `reported` already has its problem (an invalid token read as none is not also "not set")."""
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
    return [p for p in problems if p.variable not in reported]


def tokens(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = items(env, name)
    for token in found:
        if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
            # Never echo the value: it is a secret, and this message is logged and answered.
            raise ConfigError(name, f"each token needs at least {MIN_TOKEN_LENGTH} characters from "
                                    "A-Z a-z 0-9 . _ ~ - (a token goes into the callback URL as is)")
    return tuple(found)


def buckets(env: Mapping[str, str], name: str) -> frozenset[str]:
    found = items(env, name)
    if ANY_BUCKET in found and len(found) > 1:
        raise ConfigError(name, f"'{ANY_BUCKET}' allows every bucket: write it alone, or list bucket names")
    for bucket in found:
        if bucket != ANY_BUCKET and not BUCKET.fullmatch(bucket):
            raise ConfigError(name, f"{bucket!r} is not a bucket name like examplebucket-1250000000")
    return frozenset(found)


def prefixes(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = tuple(part.lstrip("/") for part in items(env, name))
    if any(not prefix for prefix in found):
        raise ConfigError(name, "'/' alone would allow every key: leave the variable unset instead")
    return found
