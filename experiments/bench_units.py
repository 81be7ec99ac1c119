"""Speeds as people read them, in every bench: `1,234 segments/s`, `12.3 segments/s`.

Thousands grouped and no exponent (`.3g` printed `1.23e+03`); below 100, three significant
digits, so a slow CPU figure keeps its precision.
"""

from __future__ import annotations

import math


def rate(value: float) -> str:
    """A rate as a number: whole and grouped from 100 up, else three significant digits."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 99.95:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def per_second(value: float, unit: str) -> str:
    """`1,234 segments/s`."""
    return f"{rate(value)} {unit}/s"
