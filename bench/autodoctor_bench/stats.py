"""Medians, spreads and the number formats shared by the sections' measure and render."""

from __future__ import annotations

import statistics
import time
from typing import Any

EN_DASH = "\u2013"


def log(msg: str) -> None:
    print(f"bench [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def med(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values: list[Any]) -> tuple[Any, Any]:
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (None, None)


def ms(value: Any) -> str:
    """A latency for the log line, or n/a when nothing was delivered."""
    return f"{value:.2f}" if isinstance(value, (int, float)) else "n/a"


def fmt(value: Any, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def fspread(values: list[Any], digits: int = 0) -> str:
    lo, hi = spread(values)
    if lo is None:
        return "n/a"
    return f"{lo:,.{digits}f}{EN_DASH}{hi:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**MISS**")


def block(text: str) -> str:
    return "```\n" + text.rstrip() + "\n```"
