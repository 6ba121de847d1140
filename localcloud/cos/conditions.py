"""HTTP semantics shared by the operations: dates, ETag matching, preconditions and ranges."""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime

from . import errors

_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def iso8601(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def etag_matches(header_value: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match value names this ETag (quotes optional, `*`, lists)."""
    candidates = [candidate.strip() for candidate in header_value.split(",")]
    return any(candidate == "*" or candidate.removeprefix("W/").strip('"') == etag for candidate in candidates)


def _modified_since(last_modified: float, since: float) -> bool:
    # HTTP dates have whole seconds.
    return int(last_modified) > int(since)


def check_read_preconditions(headers: Mapping[str, str], etag: str, last_modified: float) -> bool:
    """For GET/HEAD: raise 412 PreconditionFailed, return False for 304 Not Modified, True to proceed."""
    if_match = headers.get("If-Match")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise errors.precondition_failed()
    else:
        unmodified_since = parse_http_date(headers.get("If-Unmodified-Since"))
        if unmodified_since is not None and _modified_since(last_modified, unmodified_since):
            raise errors.precondition_failed()
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return not etag_matches(if_none_match, etag)
    modified_since = parse_http_date(headers.get("If-Modified-Since"))
    if modified_since is not None and modified_since <= time.time():
        return _modified_since(last_modified, modified_since)
    return True


def check_copy_source_preconditions(headers: Mapping[str, str], etag: str, last_modified: float) -> None:
    """The x-cos-copy-source-If-* headers: every failed condition answers 412 (never 304)."""
    def header(name: str) -> str | None:
        return headers.get(f"x-cos-copy-source-{name}")

    if_match, if_none_match = header("If-Match"), header("If-None-Match")
    if if_match is not None and not etag_matches(if_match, etag):
        raise errors.precondition_failed()
    if if_none_match is not None and etag_matches(if_none_match, etag):
        raise errors.precondition_failed()
    unmodified_since = parse_http_date(header("If-Unmodified-Since"))
    if if_match is None and unmodified_since is not None and _modified_since(last_modified, unmodified_since):
        raise errors.precondition_failed()
    modified_since = parse_http_date(header("If-Modified-Since"))
    if if_none_match is None and modified_since is not None and not _modified_since(last_modified, modified_since):
        raise errors.precondition_failed()


def _unsatisfiable(size: int) -> errors.CosError:
    return errors.CosError(
        416, "InvalidRange", "The requested range is not satisfiable.", headers=[("Content-Range", f"bytes */{size}")],
    )


def parse_read_range(header_value: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a GET `Range`; None to send the whole object (absent, malformed or
    multi-range values are ignored, as HTTP allows); 416 InvalidRange when it cannot be satisfied."""
    if not header_value:
        return None
    match = _BYTE_RANGE.fullmatch(header_value.strip())
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        if match[2] and int(match[2]) < start:
            return None  # not a valid range: ignored
        if start >= size:
            # `bytes=N-` with N at or past the end included: no byte of the object is asked for, so
            # 416 InvalidRange (RFC 9110 §14.1.2 and §15.5.17), as a closed range past the end already was.
            raise _unsatisfiable(size)
        end = min(int(match[2]), size - 1) if match[2] else size - 1
        return start, end
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise _unsatisfiable(size)
    return max(size - suffix, 0), size - 1


def parse_copy_range(header_value: str | None, size: int) -> tuple[int, int] | None:
    """x-cos-copy-source-range `bytes=first-last`, which must lie within the source; None for all of it."""
    if not header_value:
        return None
    match = _BYTE_RANGE.fullmatch(header_value.strip())
    if match is None or not match[1] or not match[2]:
        raise errors.invalid_argument("x-cos-copy-source-range must look like bytes=first-last.")
    start, end = int(match[1]), int(match[2])
    if start > end or end >= size:
        raise errors.invalid_argument(
            f"The range {header_value} is not valid for a source object of {size} bytes.",
        )
    return start, end

