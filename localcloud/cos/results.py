"""Helpers the XML-answering operations share: result bodies, numeric parameters, key encoding."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import xmltodict

from . import errors
from .exchange import Response


def xml_result(root: str, content: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response.xml(xmltodict.unparse({root: content}).encode("utf-8"), headers=headers)


def int_param(query: Mapping[str, str], name: str, default: int, lowest: int, highest: int) -> int:
    text = query.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise errors.invalid_argument(f"{name} must be a number; got {text!r}.") from None
    if not lowest <= value <= highest:
        raise errors.invalid_argument(f"{name} must be between {lowest} and {highest}; got {value}.")
    return value


def key_encoder(query: Mapping[str, str]) -> Callable[[str], str]:
    """With `encoding-type=url`, keys and prefixes in listings are URL-encoded (the SDK decodes them)."""
    if query.get("encoding-type") == "url":
        return lambda text: quote(text, safe="/")
    return lambda text: text


def owner(bucket: str) -> dict[str, str]:
    appid = bucket.rsplit("-", 1)[-1]
    owner_id = f"qcs::cam::uin/{appid}:uin/{appid}" if appid.isdigit() else "qcs::cam::anyone:anyone"
    return {"ID": owner_id, "DisplayName": appid}
