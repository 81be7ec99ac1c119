"""experiments/bench_ssl.py prints its two rows per backbone (a tiny network, one batch), with
speeds for people whatever the machine's speed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.ssl_tiny import tiny_override
from tests.test_bench_units import SPEED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import bench_ssl
from bench_ssl import ssl_rows


def test_ssl_rows_measure_both_passes_of_each_backbone() -> None:
    rows = ssl_rows(
        torch.device("cpu"), ("wavlm_base_plus",), (2, 1), (tiny_override("WAVLM_BASE_PLUS"),)
    )
    assert [row[0] for row in rows] == [
        "wavlm_base_plus embedding pass (frozen, every layer)",
        "wavlm_base_plus fine-tuning step (conv encoder frozen)",
    ]
    for row in rows:
        speed = SPEED.fullmatch(row[3])
        assert speed and float(speed.group(1).replace(",", "")) > 0
        assert "random weights" in row[5] and "cpu, float32, batch 2" in row[1]


@pytest.mark.parametrize(
    ("batches_per_second", "shown"), [(5000.0, "10,000"), (617.3, "1,235"), (0.02, "0.0400")]
)
def test_ssl_rows_read_the_same_on_a_fast_or_a_slow_machine(
    batches_per_second: float, shown: str, monkeypatch
) -> None:
    monkeypatch.setattr(bench_ssl, "segments_per_second", lambda *args: batches_per_second)
    rows = ssl_rows(torch.device("cpu"), ("hubert_base",), (2, 1), (tiny_override("HUBERT_BASE"),))
    assert [row[3] for row in rows] == [f"{shown} segments/s"] * 2
