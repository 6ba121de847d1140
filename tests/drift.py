"""Drift: what CI may change in a payload without changing what it means.

CI's payloads vary by job type, template, API version and year. These mutations touch only
what decides nothing (numbers written another way, optional nodes dropped, unknown nodes
added, empty elements, element order, JSON numbers for strings, one object for a one-element
array), so a drifted payload must get exactly the answer of the original.
"""
from __future__ import annotations

import json
import random
from typing import Any

import xmltodict

# Paths (element names from the root's children down, list positions left out) that decide a
# verdict or an action: these and their containers are never dropped, emptied or rewritten.
DECIDING = (
    ("EventName",),
    *[("JobsDetail", name) for name in ("JobId", "State", "Code", "Message", "Tag", "CreationTime", "EndTime")],
    *[("JobsDetail", "Input", name) for name in ("BucketId", "Region", "Object")],
    ("JobsDetail", "Operation", "MediaResult"),
    ("JobsDetail", "Operation", "Output", "Bucket"),
    ("JobsDetail", "Operation", "Output", "Region"),
    *[("WorkflowExecution", name) for name in ("RunId", "WorkflowId", "State", "BucketId", "Tasks")],
)
NUMBERS = ("25", "25.000000", "50/2", "1.000", "", "-", "0", "-99")
OPTIONAL = ("MediaInfo", "Video", "UserData", "Workflow", "QueueId", "TemplateName", "TemplateId", "StartTime")
MUTATIONS = ("number", "drop", "drop-optional", "unknown", "empty", "shuffle", "json-number", "unwrap")


def protected(path: tuple[str, ...]) -> bool:
    """True on a deciding path, below one, or on the way to one."""
    return any(path[:len(d)] == d or d[:len(path)] == path for d in DECIDING)


def load(body: bytes, fmt: str) -> Any:
    text = body.decode("utf-8-sig")
    if fmt == "xml":
        return xmltodict.parse(text)["Response"]
    doc = json.loads(text)
    return doc["Response"] if set(doc) == {"Response"} else doc  # older JSON wraps the callback


def dump(tree: Any, fmt: str) -> bytes:
    if fmt == "xml":
        return xmltodict.unparse({"Response": tree}).encode()
    return json.dumps(tree, ensure_ascii=False).encode()


def places(tree: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """(path, container, key-or-index) for every node below `tree`."""
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in items:
        child_path = (*path, key) if isinstance(key, str) else path
        found.append((child_path, tree, key))
        found += places(child, child_path)
    return found


def mutate(tree: Any, fmt: str, kind: str, rng: random.Random) -> str:
    """Apply one mutation of `kind` in place; a description of what changed ('' when none applied)."""
    nodes = [(p, c, k) for p, c, k in places(tree) if isinstance(k, str) or kind in ("unwrap", "shuffle")]
    rng.shuffle(nodes)
    for path, container, key in nodes:
        node = container[key]
        loose = not protected(path) and isinstance(key, str) and not key.startswith(("@", "#"))
        if kind == "number" and loose and (node is None or isinstance(node, str)):
            container[key] = rng.choice(NUMBERS)
        elif (kind == "drop" and loose) or (kind == "drop-optional" and loose and key in OPTIONAL):
            del container[key]
        elif kind == "empty" and loose:
            if fmt == "xml":
                container[key] = None
            else:
                del container[key]  # CI's JSON leaves an empty element out
        elif kind == "json-number" and fmt == "json" and loose and isinstance(node, str) and _numeric(node):
            container[key] = float(node) if "." in node else int(node)
        elif kind == "unwrap" and isinstance(node, list) and len(node) == 1 and isinstance(node[0], (dict, str)):
            container[key] = node[0]
        elif kind == "shuffle" and isinstance(node, dict) and len(node) > 1:
            keys = list(node)
            rng.shuffle(keys)
            container[key] = {k: node[k] for k in keys}
        elif kind == "shuffle" and isinstance(node, list) and len(node) > 1 and not protected(path):
            rng.shuffle(node)
        elif kind == "unknown" and isinstance(node, dict):
            node[f"Zz{rng.randrange(10**6)}"] = rng.choice(["x", "50/1", {"Deep": {"Deeper": "1"}}, None])
        else:
            continue
        return f"{kind} at {'.'.join(path) or 'root'}"
    return ""


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text not in ("nan", "inf", "-inf", "infinity") and text.lower() == text
