"""A job on several devices: DDP trains (gloo on CPU here), rank 0 tests every clip once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segser.evaluate import evaluate
from tests.hydra_app import composed
from tests.segser_cli import run_segser


def test_two_process_ddp_run_tests_each_clip_once(tmp_path: Path) -> None:
    overrides = ["experiment=demo_baseline", "dataset.num_clips=40", "callbacks.progress_bar=null"]
    result = run_segser(
        "segser.train", *overrides, "trainer.max_epochs=2",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    payload = json.loads((run / "metrics.json").read_text())
    assert sum(map(sum, payload["confusion_matrix"])) == payload["num_test_clips"]
    assert payload["epochs_trained"] == 2  # max_epochs, as fit's trainer.current_epoch counts
    # A single-process re-test of the best checkpoint sees the same segments and clips.
    cfg = composed(
        "evaluate",
        [
            f"ckpt={payload['best_checkpoint']}",
            "dataset=demo",
            "dataset.num_clips=40",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
    )
    again = evaluate(cfg, tmp_path / "eval")
    assert again["num_test_segments"] == payload["num_test_segments"]
    for name, value in payload["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, abs=1e-6)
