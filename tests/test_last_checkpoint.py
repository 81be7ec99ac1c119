"""checkpoints/last.ckpt holds the last epoch (best.ckpt the best one), so a run started again
goes on from where it stopped, not from its best epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segser.models.module import SegmentEmotionClassifier
from segser.train import train
from tests.models.test_class_weights_in_runs import tiny_run
from tests.test_validation_scores_from_best import SETTINGS  # best epoch 3 of 6


@pytest.fixture(scope="module")
def unkilled(tmp_path_factory) -> tuple[Path, dict]:
    tmp_path = tmp_path_factory.mktemp("unkilled")
    return tmp_path / "run", train(tiny_run(tmp_path, *SETTINGS), tmp_path / "run")


def test_last_is_the_last_epoch_and_best_the_best(unkilled) -> None:
    run_dir, payload = unkilled
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert payload["epochs_trained"] == 6 and best["epoch"] == 3  # the case: best is not last
    assert last["epoch"] == 5 and last["global_step"] > best["global_step"]
    (key,) = [k for k in last["callbacks"] if "Checkpoint{" in k]
    assert key.startswith("ModelCheckpoint{")  # the key checkpoints of earlier runs carry
    assert last["callbacks"][key]["best_model_path"].endswith("best.ckpt")
    assert not torch.equal(last["state_dict"]["head.layers.0.weight"],
                           best["state_dict"]["head.layers.0.weight"])  # fmt: skip


def test_a_run_started_again_goes_on_from_its_last_epoch(unkilled, tmp_path, monkeypatch) -> None:
    """Stopped after epoch 4 (its best was epoch 3), run again to 6 epochs: it trains epoch 5
    only, and ends where the run that was never stopped ended."""
    _, expected = unkilled
    run_dir = tmp_path / "run"
    stopped = [s for s in SETTINGS if not s.startswith("trainer.max_epochs")]
    train(tiny_run(tmp_path, *stopped, "trainer.max_epochs=5"), run_dir)
    epochs = []
    step = SegmentEmotionClassifier.training_step

    def counting_step(self, batch, batch_idx):
        epochs.append(self.current_epoch)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(SegmentEmotionClassifier, "training_step", counting_step)
    again = train(tiny_run(tmp_path, *SETTINGS), run_dir)
    assert set(epochs) == {5}
    assert again["epochs_trained"] == 6
    assert Path(again["best_checkpoint"]).name == "best.ckpt"
    assert again["metrics"] == pytest.approx(expected["metrics"])
    assert again["validation"] == pytest.approx(expected["validation"])
