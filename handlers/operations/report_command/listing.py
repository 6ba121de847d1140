"""The report command's reading of COS: `CosListing`, the thin adapter over the function's own client, and
`collect`, which lists, reads and hands what it read to the pure summarising (`summarise`)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from handlers.config import Settings
from handlers.operations.report_command.summarise import (
    MAX_REPORT_BYTES,
    REPORT_SUFFIX,
    Summary,
    Unreadable,
    UnreadableReport,
    own_record,
    parse_report,
    summarise_reports,
    summarise_tags,
)
from handlers.storage.records import STATE_PREFIX

PROGRESS_EVERY = 100
_READERS = 8  # reports and tag sets read at once


@dataclass(frozen=True)
class Listed:
    key: str
    last_modified: datetime


class CosListing:
    """Lists keys and reads reports and tags, through the function's own client factory."""

    def __init__(self, settings: Settings, bucket: str, region: str):
        from handlers.storage.clients import Clients  # the SDK is imported only when COS is really read
        self._client = Clients(settings).cos(region)
        self._bucket = bucket

    def keys(self, prefix: str) -> Iterator[Listed]:
        marker = ""
        while True:
            page = self._client.list_objects(Bucket=self._bucket, Prefix=prefix, Marker=marker, MaxKeys=1000)
            contents = page.get("Contents") or []
            for item in contents if isinstance(contents, list) else [contents]:
                yield Listed(item["Key"], _parse_time(item.get("LastModified", "")))
            if str(page.get("IsTruncated", "false")).lower() != "true" or not contents:
                return
            marker = page.get("NextMarker") or contents[-1]["Key"]

    def report(self, key: str) -> bytes:
        """The object's bytes, one more than MAX_REPORT_BYTES at most (parse_report judges them)."""
        stream = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].get_raw_stream()
        try:
            return bytes(stream.read(MAX_REPORT_BYTES + 1))
        finally:
            stream.close()

    def tags(self, key: str) -> dict[str, str]:
        data = self._client.get_object_tagging(Bucket=self._bucket, Key=key) or {}
        tag_list = (data.get("TagSet") or {}).get("Tag") or []
        if isinstance(tag_list, dict):
            tag_list = [tag_list]
        return {str(t.get("Key")): str(t.get("Value") or "") for t in tag_list}


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(timezone.utc)


def collect(listing: CosListing, bucket: str, prefix: str, reports_prefix: str, since: datetime | None,
            progress: Callable[[str], None]) -> Summary:
    """The reports when there are any under reports_prefix, else the tags under prefix."""
    def recent(items: Iterable[Listed]) -> Iterator[Listed]:
        for count, item in enumerate(items, start=1):
            if count % PROGRESS_EVERY == 0:
                progress(f"{count} keys listed...")
            if since is None or item.last_modified >= since:
                yield item

    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        if reports_prefix:
            listed = [i.key for i in recent(listing.keys(reports_prefix)) if not own_record(i.key, reports_prefix)]
            keys = [key for key in listed if key.endswith(REPORT_SUFFIX)]
            if listed:
                progress(f"reading {len(keys)} audit reports under {reports_prefix}")
                unreadable: list[Unreadable] = []
                for key in listed:  # named as no report is: not read, but counted (the summary is incomplete)
                    if not key.endswith(REPORT_SUFFIX):
                        unreadable.append(Unreadable(key, f"not named <JobId>{REPORT_SUFFIX}, as every audit "
                                                          "report is"))
                        progress(f"warning: {key} skipped, it is no audit report: {unreadable[-1].reason}")

                def readable() -> Iterator[dict[str, Any]]:
                    for key, body in zip(keys, pool.map(listing.report, keys), strict=True):
                        try:
                            yield parse_report(body)
                        except UnreadableReport as exc:
                            unreadable.append(Unreadable(key, str(exc)))
                            progress(f"warning: {key} skipped, it is no audit report: {exc}")
                summary = summarise_reports(bucket, readable(), prefix)
                summary.unreadable = unreadable
                return summary
            progress(f"no audit reports under {reports_prefix}: reading the objects' tags under {prefix or '/'}")
        # The function's own records (reports; notification markers without REPORT_PREFIX) are no outputs.
        keys = [i.key for i in recent(listing.keys(prefix))
                if not (reports_prefix and i.key.startswith(reports_prefix)) and not i.key.startswith(STATE_PREFIX)
                and not i.key.endswith("/")]
        progress(f"reading the tags of {len(keys)} objects under {prefix or '/'}")
        tags = pool.map(listing.tags, keys)
        return summarise_tags(bucket, zip(keys, tags, strict=True))
