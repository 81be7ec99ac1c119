"""Every bench prints speeds for people: `1,234 segments/s`, never `1.23e+03 segments/s`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from bench_units import per_second, rate

# A speed as a reader (and the tests of every bench) takes it: grouped digits, maybe decimals.
SPEED = re.compile(r"(\d{1,3}(?:,\d{3})*|\d+\.\d+) segments/s")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234.4, "1,234"),
        (1234567.0, "1,234,567"),
        (999.6, "1,000"),
        (100.0, "100"),
        (99.94, "99.9"),
        (12.345, "12.3"),
        (1.0, "1.00"),
        (0.01234, "0.0123"),
        (0.0, "0"),
    ],
)
def test_rates_read_as_numbers_people_write(value: float, shown: str) -> None:
    assert rate(value) == shown
    assert per_second(value, "segments") == f"{shown} segments/s"
    assert SPEED.fullmatch(per_second(value, "segments"))


@pytest.mark.parametrize("value", [1e-4, 0.5, 7.0, 42.0, 512.0, 1e3, 2.5e4, 3e6, 8.8e9])
def test_no_exponent_at_any_speed(value: float) -> None:
    text = per_second(value, "segments")
    assert "e" not in text.split()[0] and SPEED.fullmatch(text), text
    assert float(text.split()[0].replace(",", "")) == pytest.approx(value, rel=5e-3)
