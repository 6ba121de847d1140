"""What operators see: audit reports (REPORT_PREFIX) and notifications (NOTIFY_URL, NOTIFY_ON,
NOTIFY_FORMAT, NOTIFY_SECRET)."""
from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from handlers.config import (
    NOTIFY_FORMATS,
    NOTIFY_ON_DEFAULT,
    ConfigError,
    Reader,
    items,
    key_prefix,
    notify_format_of,
    value,
    webhook_key,
)

NOTIFY_EVENTS = ("verified", "mismatch", "missing", "superseded", "unverifiable", "error",  # verdicts
                 "failed", "failed-job", "retry", "skipped", "pending")  # outcomes ("verified", "pending": both)
MIN_WEBHOOK_SECRET_BYTES, MAX_WEBHOOK_SECRET_BYTES = 24, 64  # Standard Webhooks: 24 bytes at least


def read(reader: Reader) -> dict[str, Any]:
    env = reader.env
    none: tuple[str, ...] = ()
    urls = reader.read(lambda: notify_urls(env), none)
    chosen = reader.read(lambda: notify_format(env), "")
    secret = reader.value("NOTIFY_SECRET")
    reader.read(lambda: check_secret(secret, {chosen or notify_format_of(url) for url in urls}), None)
    return {
        "report_prefix": reader.read(lambda: key_prefix(env, "REPORT_PREFIX"), ""),
        "notify_urls": urls,
        "notify_on": reader.read(lambda: notify_on(env), frozenset(NOTIFY_ON_DEFAULT)),
        "notify_format": chosen,
        "notify_secret": secret,
    }


def notify_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    urls = tuple(items(env, "NOTIFY_URL"))
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Never echo the URL: a robot's webhook URL carries its credential (key=, access_token=).
            raise ConfigError("NOTIFY_URL", "each entry must be an http:// or https:// address")
    return urls


def notify_on(env: Mapping[str, str]) -> frozenset[str]:
    events = frozenset(item.lower() for item in items(env, "NOTIFY_ON")) or frozenset(NOTIFY_ON_DEFAULT)
    unknown = sorted(events - set(NOTIFY_EVENTS))
    if unknown:
        raise ConfigError("NOTIFY_ON", f"{', '.join(unknown)}: use the verdicts and outcomes "
                                       f"{', '.join(NOTIFY_EVENTS)}")
    return events


def notify_format(env: Mapping[str, str]) -> str:
    chosen = value(env, "NOTIFY_FORMAT").lower()
    if chosen and chosen not in NOTIFY_FORMATS:
        raise ConfigError("NOTIFY_FORMAT", f"{chosen!r} is not one of {', '.join(NOTIFY_FORMATS)}")
    return chosen


def check_secret(secret: str, formats: set[str]) -> None:
    if secret and formats == {"wecom"}:
        raise ConfigError("NOTIFY_SECRET", "WeCom group robots sign nothing: the key in NOTIFY_URL is their credential")
    if "json" in formats:
        webhook_secret(secret)


def webhook_secret(secret: str) -> None:
    hint = "a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes"
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
