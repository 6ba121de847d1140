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
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1 and the Unicode line breaks
MAX_KEY_BYTES = 850  # COS refuses longer keys, so CI cannot have written one
# CI runs in China; a time without an offset is read as Beijing time.
_CHINA = timezone(timedelta(hours=8))
_KIND_NAMES = {int: "an integer", float: "a number"}
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")
_USUAL_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)([+-])(\d\d)([0-5]\d)", re.ASCII)


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
    elif isinstance(raw, dict) and raw and all(name.startswith("@") for name in raw):
        return ""  # attributes only: an empty element
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
    usual = _usual_time(value)
    if usual is not None:
        return usual
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


def _usual_time(value: str) -> datetime | None:
    """CI's own form (`2022-07-01T10:12:26+0800`, or a space for the `T`) read without strptime,
    which costs ten times as much. None for anything else, and for values datetime refuses:
    the formats above then decide, as they always did."""
    match = _USUAL_TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, offset_hours, offset_minutes = match.groups()
    offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(-offset if sign == "-" else offset))
    except ValueError:
        return None


def xml_name(field_name: str) -> str:
    return "".join(part.capitalize() for part in field_name.split("_"))


class _FieldSpec(NamedTuple):
    name: str
    source: str
    kind: type
    is_list: bool
    is_node: bool  # the kind is a model, built from the element's children
    parse: Callable[[str, str], Any] | None
    required: bool
    decides: bool  # a surprise here refuses the callback; anywhere else the field keeps its default
    opaque: bool  # CI's subtree, kept as it came
    raw: bool  # the node itself


@functools.cache
def _specs(cls: type) -> tuple[_FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        kind, is_list = _unwrap(hints[f.name])
        meta = f.metadata
        specs.append(_FieldSpec(f.name, xml_name(f.name), kind, is_list, dataclasses.is_dataclass(kind),
                                meta.get("parse"), meta.get("required", False), meta.get("decides", False),
                                meta.get("opaque", False), meta.get("raw", False)))
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
    """Build the dataclass `cls` from `node`, reporting problems by their path.

    Only fields that decide (`models.decides`) may refuse the node; a field that does not
    read keeps its default, and nodes no field names are never looked at."""
    if node is None or node == "":
        node = {}
    if not isinstance(node, dict):
        raise MalformedCallback(f"{path}: expected an element with children, got {type(node).__name__}")
    values = {}
    for spec in _specs(cls):
        if spec.raw:
            values[spec.name] = node
            continue
        raw = node.get(spec.source)
        if spec.opaque:
            if raw is not None and raw != "":
                values[spec.name] = raw
            continue
        try:
            value = _field(spec, raw, path)
        except MalformedCallback:
            if spec.decides:
                raise
            continue  # tolerated: this field decides nothing
        if value is None or value == "":
            if spec.required:
                raise MalformedCallback(f"{path}.{spec.source} is required")
            continue  # keep the dataclass default
        values[spec.name] = value
    return cls(**values)


def _field(spec: _FieldSpec, raw: Any, path: str) -> Any:
    if spec.is_list:
        return tuple(_value(spec, item, path, f"{spec.source}[{i}]") for i, item in enumerate(as_list(raw)))
    if raw is None or raw == "":
        return None
    if isinstance(raw, list):
        raise MalformedCallback(f"{path}.{spec.source}: expected one value, got {len(raw)}")
    return _value(spec, raw, path, spec.source)


def _value(spec: _FieldSpec, raw: Any, path: str, name: str) -> Any:
    """`raw` as the field's type. The field's path (`path.name`) is spelled out only when it is
    needed: for a nested model, a parse rule or an error (formatting it for every field was a
    fifth of the parse)."""
    if spec.is_node:
        return build(spec.kind, raw, f"{path}.{name}")
    # Almost every value is ASCII text, which holds no lone surrogate for text() to refuse.
    value = raw.strip() if type(raw) is str and raw.isascii() else text(raw, f"{path}.{name}")
    if spec.parse is not None:
        return spec.parse(value, f"{path}.{name}")
    if spec.kind is str:
        return value
    if not value:
        return None
    try:
        return spec.kind(value)
    except ValueError:
        raise MalformedCallback(f"{path}.{name}: {value[:64]!r} is not {_KIND_NAMES[spec.kind]}") from None
