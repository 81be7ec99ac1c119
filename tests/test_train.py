"""End to end on a tiny demo corpus: real epochs, a checkpoint, test metrics and outputs."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from segser.evaluate import evaluate
from segser.models.checkpoint import load_classifier
from segser.train import train
from tests.hydra_app import composed


def demo_config(tmp_path: Path, *extra: str):
    overrides = [
        "experiment=demo_baseline",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.output_dir={tmp_path / 'outputs'}",
        "dataset.num_clips=48",
        "trainer.max_epochs=2",
        "callbacks.progress_bar=null",
        *extra,
    ]
    return composed("train", overrides)


def clip_accuracies_from_predictions(path: Path) -> dict[str, float]:
    """An independent recomputation of SA and ALCA/majority from predictions.csv."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    classes = [key[2:] for key in rows[0] if key.startswith("p_")]
    sa = np.mean([r["segment_prediction"] == r["label"] for r in rows])
    log_probs = defaultdict(list)
    labels = {}
    for r in rows:
        labels[r["clip_id"]] = r["label"]
        log_probs[r["clip_id"]].append(r["clip_prediction_mean_logits"])
    alca = np.mean([log_probs[c][0] == labels[c] for c in labels])
    return {"SA": float(sa), "ALCA": float(alca), "clips": len(labels), "classes": classes}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp_path = tmp_path_factory.mktemp("run")
    out_dir = tmp_path / "outputs" / "run"
    payload = train(demo_config(tmp_path), out_dir)
    return out_dir, payload


def test_run_writes_metrics_predictions_plot_and_checkpoints(trained_run) -> None:
    out_dir, payload = trained_run
    written = json.loads((out_dir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(payload))
    assert set(written["metrics"]) == {"SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA"}
    assert all(0.0 <= v <= 1.0 for v in written["metrics"].values())
    assert written["epochs_trained"] == 2
    assert written["config"]["backbone"]["name"] == "baseline"
    assert written["split"]["name"] == "random"
    confusion = np.array(written["confusion_matrix"])
    assert confusion.sum() == written["num_test_clips"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(written["metrics"]["WA"])
    assert (out_dir / "confusion_matrix.png").stat().st_size > 1000
    assert (out_dir / "checkpoints" / "best.ckpt").is_file()
    assert (out_dir / "checkpoints" / "last.ckpt").is_file()
    split = json.loads((out_dir / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"])


def test_predictions_agree_with_metrics(trained_run) -> None:
    out_dir, payload = trained_run
    recomputed = clip_accuracies_from_predictions(out_dir / "predictions.csv")
    assert recomputed["SA"] == pytest.approx(payload["metrics"]["SA"])
    assert recomputed["ALCA"] == pytest.approx(payload["metrics"]["ALCA"])
    assert recomputed["clips"] == payload["num_test_clips"]
    with open(out_dir / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    segments = Counter(r["clip_id"] for r in rows)
    assert sum(segments.values()) == payload["num_test_segments"]
    hop = payload["config"]["segmentation"]["hop_seconds"]
    assert hop == 0.5  # the demo uses the paper's overlapping segments
    for row in rows:
        start = float(row["start_s"])
        assert start == pytest.approx(int(row["segment"]) * hop)
        assert float(row["end_s"]) == pytest.approx(start + 1.0)


def test_checkpoint_reloads_and_evaluate_reproduces_the_test(trained_run, tmp_path: Path) -> None:
    out_dir, payload = trained_run
    model = load_classifier(out_dir / "checkpoints" / "best.ckpt")
    assert model.classes == ["angry", "happy", "sad", "neutral"]
    data_dir = Path(payload["config"]["paths"]["data_dir"])
    cfg = composed(
        "evaluate",
        [
            f"ckpt={payload['best_checkpoint']}",
            "dataset=demo",
            "dataset.num_clips=48",
            f"paths.data_dir={data_dir}",
        ],
    )
    again = evaluate(cfg, tmp_path / "eval")
    for name, value in payload["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, abs=1e-6)
    assert (tmp_path / "eval" / "metrics.json").is_file()


@pytest.mark.slow  # ~20 s; tests/models/test_module.py checks divergence in-process
def test_diverged_training_ends_in_one_line_and_writes_no_metrics(tmp_path: Path) -> None:
    from tests.segser_cli import run_segser

    result = run_segser(
        "segser.train", "experiment=demo", "dataset.num_clips=40", "optimizer.lr=1e37",
        "trainer.max_epochs=3", "callbacks.progress_bar=null", tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training diverged in epoch 0 (counting from 0)"), last
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "outputs").rglob("metrics.json"))
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))


class RecordingLogger:
    """Stands in for WandbLogger: keeps what log_to_wandb hands it."""

    def __init__(self) -> None:
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.experiment = type("Run", (), {"summary": {}})()

    def log_image(self, key: str, images: list[str]) -> None:
        pass

    def log_table(self, key: str, columns: list[str], data: list[list[str]]) -> None:
        self.tables[key] = (columns, data)


def test_wandb_predictions_table_reads_csv_quoting(tmp_path: Path) -> None:
    from segser.runs.results import log_to_wandb

    rows = [["clip_id", "label"], ["Ses01F_impro01, take 2", "happy"], ['say "hi"', "sad"]]
    with open(tmp_path / "predictions.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    logger = RecordingLogger()
    log_to_wandb(logger, tmp_path, {"metrics": {"ALCA": 0.5}})
    assert logger.tables["test/predictions"] == (rows[0], rows[1:])
    assert logger.experiment.summary == {"test/ALCA": 0.5}


def test_a_run_s_num_threads_last_only_as_long_as_the_run(tmp_path: Path) -> None:
    """num_threads is the run's: a notebook's next run (or test) gets its own count back."""
    import torch

    before = torch.get_num_threads()
    seen: list[int] = []
    try:
        torch.set_num_threads(2 if before != 2 else 3)
        caller = torch.get_num_threads()
        cfg = demo_config(tmp_path, "num_threads=1", "trainer.max_epochs=1")
        train(cfg, tmp_path / "outputs" / "run")
        seen.append(torch.get_num_threads())
    finally:
        torch.set_num_threads(before)
    assert seen == [caller]
