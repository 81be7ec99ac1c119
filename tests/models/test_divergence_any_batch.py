"""A non-finite loss in any batch of an epoch stops the run with its one line, wherever in the
epoch it falls (not only in its last step). The NaN is added to the loss as a constant, so the
gradients, the weights and every later batch stay finite: only that one batch shows it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import segser.train as train_module
from segser.errors import SegserError
from segser.train import train
from tests.models.test_class_weights_in_runs import tiny_run


class NanInOneBatch(nn.Module):
    """The model's loss, plus NaN in batch `batch` of epoch `epoch` of `stage` (train / val)."""

    def __init__(self, loss: nn.Module, model, stage: str, epoch: int, batch: int) -> None:
        super().__init__()
        self.inner, self.model = loss, [model]  # a list: not a submodule
        self.target, self.calls = (stage, epoch, batch), {}
        self.hit = False

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.inner(logits, labels)
        trainer = self.model[0].trainer
        if trainer.sanity_checking or not (trainer.training or trainer.validating):
            return loss
        stage = "train" if self.model[0].training else "val"
        key = (stage, trainer.current_epoch)
        index = self.calls.get(key, 0)
        self.calls[key] = index + 1
        if (*key, index) == self.target:
            self.hit = True
            return loss + torch.tensor(math.nan, device=loss.device)
        return loss


@pytest.fixture
def nan_in(monkeypatch):
    made = {}

    def plant(stage: str, epoch: int, batch: int) -> dict:
        build = train_module.build_classifier

        def build_with_nan(*args, **kwargs):
            model = build(*args, **kwargs)
            model.loss = NanInOneBatch(model.loss, model, stage, epoch, batch)
            made["loss"] = model.loss
            return model

        monkeypatch.setattr(train_module, "build_classifier", build_with_nan)
        return made

    return plant


@pytest.mark.parametrize(
    ("stage", "epoch", "batch"), [("train", 0, 0), ("train", 0, 1), ("train", 1, 0), ("val", 0, 0)]
)
def test_one_non_finite_batch_stops_the_run(stage, epoch, batch, nan_in, tmp_path) -> None:
    made = nan_in(stage, epoch, batch)
    cfg = tiny_run(tmp_path, "data.batch_size=8", "trainer.max_epochs=3")
    threads = torch.get_num_threads()
    with pytest.raises(SegserError) as stopped:
        train(cfg, tmp_path / "run")
    assert torch.get_num_threads() == threads  # the head's one-thread epochs are undone
    message = str(stopped.value)
    assert made["loss"].hit
    last = max(n for (s, e), n in made["loss"].calls.items() if (s, e) == (stage, epoch))
    assert last >= 2 and batch < last - 1  # the bad batch was not the epoch's last
    assert f"training diverged in epoch {epoch} (counting from 0): the {stage} loss" in message
    assert "\n" not in message
    assert not (tmp_path / "run" / "metrics.json").exists()  # reported, never scored
    saved = [torch.load(p, weights_only=True)["epoch"]
             for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt")]  # fmt: skip
    assert all(e < epoch for e in saved) and (epoch == 0 or saved)  # the diverged epoch: none


def test_the_same_run_without_it_finishes(nan_in, tmp_path) -> None:
    made = nan_in("train", 99, 0)  # never reached
    payload = train(tiny_run(tmp_path, "data.batch_size=8", "trainer.max_epochs=3"),
                    tmp_path / "run")  # fmt: skip
    assert not made["loss"].hit and payload["epochs_trained"] == 3
