"""Parse cost: callbacks parsed per second into the typed model (handlers.intake.callback.parse_callback),
against the bare parser alone (xmltodict.parse / json.loads) on the same bodies: Tencent's
documented examples in tests/fixtures/."""
from __future__ import annotations

import json
import timeit
from collections.abc import Callable

import xmltodict

from bench.figures import Figure
from bench.workload import FIXTURES
from handlers.intake.callback import parse_callback

XML = ("voice_separate_task.xml", "voice_separate_workflow.xml")
JSON = ("voice_separate_workflow.json",)


def per_second(parse: Callable[[bytes], object], bodies: list[bytes], rounds: int) -> float:
    def all_bodies() -> None:
        for body in bodies:
            parse(body)
    best = min(timeit.repeat(all_bodies, number=rounds, repeat=5))
    return rounds * len(bodies) / best


def measure(rounds: int) -> list[Figure]:
    figures = []
    for label, names, bare, bare_name in (("XML", XML, xmltodict.parse, "xmltodict.parse"),
                                           ("JSON", JSON, json.loads, "json.loads")):
        bodies = [(FIXTURES / name).read_bytes() for name in names]
        ours = per_second(parse_callback, bodies, rounds)
        figures.append(Figure(f"parse, documented {label} callbacks", ours, "callbacks/s", f"bare {bare_name}",
                              per_second(bare, bodies, rounds), ">= 0.8",
                              note=f"{', '.join(names)}; into the model, the deciding fields checked"))
    return figures
