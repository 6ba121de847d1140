"""A measured figure beside what it is compared with, and how the run reports them."""
from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

_COMPARE = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Figure:
    """`ratio` is value / baseline, or baseline / value when `inverted` (a speed-up); `target`
    bounds the ratio (`"<= 1.3"`), or is empty when the figure is reported without one."""

    name: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float | None
    target: str = ""
    inverted: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline_value is None:
            return None
        numerator, denominator = ((self.baseline_value, self.value) if self.inverted
                                  else (self.value, self.baseline_value))
        return numerator / denominator if denominator else None

    @property
    def met(self) -> bool | None:
        if not self.target or self.ratio is None:
            return None
        op, bound = self.target.split()
        return _COMPARE[op](round(self.ratio, 2), float(bound))

    def as_dict(self) -> dict:
        entry = asdict(self)
        del entry["inverted"]  # said by ratio_is
        entry["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        entry["ratio_is"] = "baseline / value" if self.inverted else "value / baseline"
        entry["met"] = self.met
        return entry


def write_json(figures: Iterable[Figure], path: Path, machine: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine, "figures": [figure.as_dict() for figure in figures]}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def table(figures: Iterable[Figure]) -> str:
    """A Markdown table: the same text goes to the terminal and into docs/performance.md."""
    rows = [("figure", "value", "compared with", "ratio", "target", "")]
    for f in figures:
        verdict = {True: "met", False: "**not met**", None: ""}[f.met]
        ratio = "–" if f.ratio is None else f"{f.ratio:.2f}"
        rows.append((f.name, _amount(f.value, f.unit), f"{f.baseline}: {_amount(f.baseline_value, f.unit)}",
                     ratio, f.target or "–", verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 100 else f"{value:,.0f} {unit}"
