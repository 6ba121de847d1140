"""Turn a parsed XML or JSON tree into the typed models, with one set of rules for both.

XML (via xmltodict) gives a dict for a node, a list when a node repeats, a string for text
and None for an empty element; CI's JSON gives the same shapes with every scalar a string,
an object or an array where XML has one node or many, and omits empty elements. Reading
each model field by its own path (never by searching) keeps nested namesakes apart.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1 and the Unicode line breaks
MAX_KEY_BYTES = 850  # COS refuses longer keys, so CI cannot have written one
# CI runs in China; a time without an offset is read as Beijing time.
_CHINA = timezone(timedelta(hours=8))
_KIND_NAMES = {int: "an integer", float: "a number"}
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")


class MalformedCallback(ValueError):
    """The body is not a callback this function can trust; the message says where and why."""


def as_list(raw: Any) -> list[Any]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        return [item for item in raw if item is not None and item != ""]
    return [raw]


def text(raw: Any, path: str) -> str:
    if raw is None:
        return ""
    if isinstance(raw, dict) and "#text" in raw:  # an element with attributes
        raw = raw["#text"]
    if isinstance(raw, str):
        return _unicode(raw.strip(), path)
    if isinstance(raw, bool):
        raise MalformedCallback(f"{path}: expected text, got {raw!r}")
    if isinstance(raw, (int, float)):
        return str(raw)
    raise MalformedCallback(f"{path}: expected text, got {type(raw).__name__}")


def _unicode(value: str, path: str) -> str:
    # JSON's \ud800 escapes decode to lone surrogates, which no URL, header or log line can carry.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedCallback(f"{path}: the text is not valid Unicode (a lone surrogate)") from None
    return value


def md5_hex(value: str, path: str) -> str:
    if not _MD5.fullmatch(value):
        raise MalformedCallback(f"{path}: {value[:64]!r} is not an MD5 (32 hex characters)")
    return value.lower()


def object_key(value: str, path: str) -> str:
    """CI writes `/output/a.mp3` for the key `output/a.mp3`; refuse keys that could escape."""
    key = value.lstrip("/")
    if not value:
        return ""
    if not key:
        raise MalformedCallback(f"{path}: {value!r} names no object")
    if _CONTROL.search(key):
        raise MalformedCallback(f"{path}: key {key[:64]!r} contains control characters")
    if ".." in key.split("/"):
        raise MalformedCallback(f"{path}: key {key[:64]!r} contains a '..' segment")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise MalformedCallback(f"{path}: key {key[:64]!r}... is longer than COS allows ({MAX_KEY_BYTES} bytes)")
    return key


def timestamp(value: str, path: str) -> datetime | None:
    if value in ("", "-"):  # a job that has not reached that point shows '-'
        return None
    for fmt in _TIME_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_CHINA)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=_CHINA)
        except ValueError:
            continue
    raise MalformedCallback(f"{path}: {value[:64]!r} is not a time")


def xml_name(field_name: str) -> str:
    return "".join(part.capitalize() for part in field_name.split("_"))


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    name: str
    source: str
    kind: type
    is_list: bool
    parse: Callable[[str, str], Any] | None
    required: bool


@functools.lru_cache(maxsize=None)
def _specs(cls: type) -> tuple[_FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        kind, is_list = _unwrap(hints[f.name])
        specs.append(_FieldSpec(f.name, xml_name(f.name), kind, is_list,
                                f.metadata.get("parse"), f.metadata.get("required", False)))
    return tuple(specs)


def _unwrap(hint: Any) -> tuple[type, bool]:
    """`tuple[X, ...]` -> (X, True); `X | None` -> (X, False); `X` -> (X, False)."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return typing.get_args(hint)[0], True
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return inner, False
    return hint, False


def build(cls: type, node: Any, path: str) -> Any:
    """Build the dataclass `cls` from `node`, reporting problems by their path."""
    if node is None or node == "":
        node = {}
    if not isinstance(node, dict):
        raise MalformedCallback(f"{path}: expected an element with children, got {type(node).__name__}")
    values = {}
    for spec in _specs(cls):
        where = f"{path}.{spec.source}"
        raw = node.get(spec.source)
        if spec.is_list:
            items = as_list(raw)
            values[spec.name] = tuple(_scalar_or_node(spec, item, f"{where}[{i}]") for i, item in enumerate(items))
            continue
        if isinstance(raw, list):
            raise MalformedCallback(f"{where}: expected one value, got {len(raw)}")
        value = _scalar_or_node(spec, raw, where) if raw not in (None, "") else None
        if value is None or value == "":
            if spec.required:
                raise MalformedCallback(f"{where} is required")
            continue  # keep the dataclass default
        values[spec.name] = value
    return cls(**values)


def _scalar_or_node(spec: _FieldSpec, raw: Any, where: str) -> Any:
    if dataclasses.is_dataclass(spec.kind):
        return build(spec.kind, raw, where)
    value = text(raw, where)
    if spec.parse is not None:
        return spec.parse(value, where)
    if spec.kind is str:
        return value
    if not value:
        return None
    try:
        return spec.kind(value)
    except ValueError:
        raise MalformedCallback(f"{where}: {value[:64]!r} is not {_KIND_NAMES[spec.kind]}") from None
