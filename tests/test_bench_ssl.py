"""experiments/bench_ssl.py prints its two rows per backbone (a tiny network, one batch)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from tests.ssl_tiny import tiny_override

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
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
        speed = re.fullmatch(r"([0-9.]+) segments/s", row[3])
        assert speed and float(speed.group(1)) > 0
        assert "random weights" in row[5] and "cpu, float32, batch 2" in row[1]
