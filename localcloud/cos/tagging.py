"""Object tag sets: COS's limits and the `<Tagging>` XML that carries them."""
from __future__ import annotations

from urllib.parse import parse_qsl
from xml.parsers.expat import ExpatError

import xmltodict

from . import errors

MAX_TAGS = 10
# PUT Object tagging (https://cloud.tencent.com/document/product/436/42997): a key is not empty and
# "长度小于128字节", a value "长度小于256字节"; the object tag overview
# (https://cloud.tencent.com/document/product/436/35665) gives 1–127 and 1–255: no empty value.
MAX_KEY_BYTES = 127
MAX_VALUE_BYTES = 255
_PUNCTUATION = set(" +-=._:/@")


def _invalid_tag(message: str) -> errors.CosError:
    return errors.CosError(400, "InvalidTag", message)


def _has_only_allowed_characters(text: str) -> bool:
    return all(char.isalnum() or char in _PUNCTUATION for char in text)


def validate(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The tag set as a dict, or InvalidTag naming the rule that was broken."""
    if len(pairs) > MAX_TAGS:
        raise _invalid_tag(f"An object can have at most {MAX_TAGS} tags; got {len(pairs)}.")
    tags: dict[str, str] = {}
    for key, value in pairs:
        key_bytes, value_bytes = len(key.encode("utf-8")), len(value.encode("utf-8"))
        if not 1 <= key_bytes <= MAX_KEY_BYTES:
            raise _invalid_tag(f"A tag key must be 1 to {MAX_KEY_BYTES} bytes long in UTF-8; got {key_bytes}.")
        if not 1 <= value_bytes <= MAX_VALUE_BYTES:
            raise _invalid_tag(f"A tag value must be 1 to {MAX_VALUE_BYTES} bytes long in UTF-8; got {value_bytes}.")
        if not _has_only_allowed_characters(key) or not _has_only_allowed_characters(value):
            raise _invalid_tag(
                "Tag keys and values may contain only letters, digits, spaces and + - = . _ : / @; "
                f"got {key!r}={value!r}."
            )
        if key in tags:
            raise _invalid_tag(f"Tag keys must be unique; {key!r} appears more than once.")
        tags[key] = value
    return tags


def parse_xml(body: bytes) -> dict[str, str]:
    try:
        document = xmltodict.parse(body)
    except ExpatError as exc:
        raise errors.malformed_xml(f"The XML you provided was not well-formed: {exc}.") from None
    tagging = document.get("Tagging") if isinstance(document, dict) else None
    if not isinstance(tagging, dict) or "TagSet" not in tagging:
        raise errors.malformed_xml("The XML you provided did not contain Tagging/TagSet.")
    tag_set = tagging["TagSet"] or {}
    if not isinstance(tag_set, dict):
        raise errors.malformed_xml("TagSet must contain Tag elements.")
    entries = tag_set.get("Tag") or []
    if isinstance(entries, dict):
        entries = [entries]
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict) or "Key" not in entry:
            raise errors.malformed_xml("Every Tag needs a Key.")
        pairs.append((entry.get("Key") or "", entry.get("Value") or ""))
    return validate(pairs)


def parse_header(value: str) -> dict[str, str]:
    """The `x-cos-tagging: k1=v1&k2=v2` request header."""
    return validate(parse_qsl(value, keep_blank_values=True))


def to_xml(tags: dict[str, str]) -> bytes:
    tag_set = {"Tag": [{"Key": key, "Value": value} for key, value in tags.items()]} if tags else None
    return xmltodict.unparse({"Tagging": {"TagSet": tag_set}}).encode("utf-8")
