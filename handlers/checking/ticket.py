"""The UserData of a FileHashCode job this function starts: a compact, printable-ASCII ticket carrying what its
callback needs to finish the object it hashed (pure)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote, unquote

MAX_USER_DATA = 1024  # CI takes at most 1,024 printable ASCII characters
PREFIX = "cvh1"  # marks UserData written by this function (version 1 of the encoding)
_KEY_DIGEST_CHARS = 32


@dataclass(frozen=True)
class Ticket:
    """What a FileHashCode job's callback needs to finish the object it hashed."""

    job_id: str  # the media job whose output this is
    tag: str  # that job's Tag (for the answer and the logs)
    bucket: str
    key: str  # the object's key; "" when only its digest fitted
    etag: str  # the ETag the object had when the hash job was submitted
    expected_md5: str
    job_end: int | None  # the media job's EndTime, Unix seconds (for `superseded`)
    key_digest: str = ""  # sha256 of the key (first 32 hex digits), when the key itself did not fit

    def names(self, key: str) -> bool:
        return key == self.key if self.key else _key_digest(key) == self.key_digest


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:_KEY_DIGEST_CHARS]


def encode(ticket: Ticket) -> str | None:
    """`cvh1|job|tag|bucket|etag|md5|end|k:<key>` with each field percent-encoded (so it is printable ASCII
    and `|` never occurs inside one); when that exceeds 1,024 characters the key is replaced by its digest
    (`h:<sha256>`: CI's answer names the key, and must hash to it). None when even that does not fit."""
    head = "|".join(quote(field, safe="") for field in (
        PREFIX, ticket.job_id, ticket.tag, ticket.bucket, ticket.etag, ticket.expected_md5,
        "" if ticket.job_end is None else str(ticket.job_end)))
    for tail in (f"k:{quote(ticket.key, safe='/')}", f"h:{_key_digest(ticket.key)}"):
        text = f"{head}|{tail}"
        if len(text) <= MAX_USER_DATA:
            return text
    return None


def decode(text: str | None) -> Ticket | None:
    """The ticket in UserData, or None when the UserData is not one this function wrote."""
    if not text or not text.startswith(PREFIX + "|"):
        return None
    parts = text.split("|")
    if len(parts) != 8 or parts[7][:2] not in ("k:", "h:"):
        return None
    _, job_id, tag, bucket, etag, md5, end, tail = (unquote(part) for part in parts)
    if not (job_id and bucket and etag and md5) or (end and not end.isdigit()):
        return None
    kind, value = tail[:2], tail[2:]
    return Ticket(job_id, tag, bucket, value if kind == "k:" else "", etag, md5, int(end) if end else None,
                  value if kind == "h:" else "")

