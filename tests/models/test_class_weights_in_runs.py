"""loss.class_weights=true reaches the loss of every training step: with and without the head's
input standardizer, and in a run resumed from its last checkpoint (tiny frozen demo runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import segser.train as train_module
from segser.evaluate import evaluate
from segser.models.checkpoint import load_trained
from segser.models.module import SegmentEmotionClassifier
from segser.train import train
from tests.hydra_app import composed


def tiny_run(tmp_path: Path, *extra: str):
    """A frozen random MLP on 40 demo clips: a whole run in a second or two, on the CPU on
    every machine (so the runs' trajectories, e.g. which epoch is best, are the same)."""
    return composed(
        "train",
        [
            "experiment=demo",
            "trainer.accelerator=cpu",
            "backbone=baseline",
            "backbone.freeze=true",
            "dataset.num_clips=40",
            "trainer.max_epochs=2",
            "callbacks.progress_bar=null",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'outputs'}",
            *extra,
        ],
    )


@pytest.fixture
def seen(monkeypatch) -> dict[str, list]:
    """The weight of every cross-entropy a fit's training and validation steps compute, and
    each run's datamodule."""
    record: dict[str, list] = {"weights": [], "val_weights": [], "datamodules": []}
    inside: list[str] = []  # the step being run, if its loss should be recorded
    for hook, key in (("training_step", "weights"), ("validation_step", "val_weights")):
        step = getattr(SegmentEmotionClassifier, hook)

        def recording_step(self, batch, batch_idx, step=step, key=key):
            fitting = self.trainer.state.fn == "fit" and not self.trainer.sanity_checking
            inside[:] = [key] if fitting else []
            try:
                return step(self, batch, batch_idx)
            finally:
                inside.clear()

        monkeypatch.setattr(SegmentEmotionClassifier, hook, recording_step)
    cross_entropy = F.cross_entropy

    def recording_cross_entropy(logits, labels, weight=None, *args, **kwargs):
        if inside:
            record[inside[0]].append(None if weight is None else weight.detach().clone())
        return cross_entropy(logits, labels, weight, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", recording_cross_entropy)
    build = train_module.build_datamodule

    def recording_build(*args, **kwargs):
        record["datamodules"].append(build(*args, **kwargs))
        return record["datamodules"][-1]

    monkeypatch.setattr(train_module, "build_datamodule", recording_build)
    return record


def inverse_frequencies(datamodule, classes: int = 4) -> torch.Tensor:
    """Independent of the module: n / (C * n_c) over the training segments' labels."""
    labels = datamodule.datasets["train"].labels.tolist()
    counts = [labels.count(c) for c in range(classes)]
    return torch.tensor([len(labels) / (classes * max(n, 1)) for n in counts])


@pytest.mark.parametrize("input_norm", [False, True])
def test_every_training_step_uses_the_class_weights(input_norm: bool, tmp_path, seen) -> None:
    cfg = tiny_run(tmp_path, "loss.class_weights=true", f"head.input_norm={input_norm}")
    train(cfg, tmp_path / "run")
    expected = inverse_frequencies(seen["datamodules"][0])
    assert not torch.allclose(expected, torch.ones(4))  # the demo split is not balanced
    assert len(seen["weights"]) >= 2 and len(seen["val_weights"]) >= 2
    # the validation loss (early stopping's monitor) is the same weighted loss
    for weight in seen["weights"] + seen["val_weights"]:
        assert weight is not None
        torch.testing.assert_close(weight.cpu(), expected)


def test_without_the_option_the_loss_is_unweighted(tmp_path, seen) -> None:
    train(tiny_run(tmp_path), tmp_path / "run")
    assert seen["weights"] and all(weight is None for weight in seen["weights"])


def test_a_resumed_run_keeps_weighing_the_classes(tmp_path, seen) -> None:
    run_dir = tmp_path / "run"
    train(tiny_run(tmp_path, "loss.class_weights=true", "trainer.max_epochs=1"), run_dir)
    first_steps = len(seen["weights"])
    payload = train(tiny_run(tmp_path, "loss.class_weights=true", "trainer.max_epochs=3"), run_dir)
    assert payload["epochs_trained"] == 3
    resumed = seen["weights"][first_steps:]
    assert resumed and len(resumed) == 2 * first_steps  # epochs 1 and 2, after the resume
    expected = inverse_frequencies(seen["datamodules"][-1])
    for weight in resumed:
        assert weight is not None
        torch.testing.assert_close(weight.cpu(), expected)


def test_a_class_weighted_checkpoint_is_evaluated_and_loaded(tmp_path) -> None:
    """Its weights come from the training labels: not stored, so evaluate and predict load it."""
    payload = train(tiny_run(tmp_path, "loss.class_weights=true"), tmp_path / "run")
    trained = load_trained(payload["best_checkpoint"])
    assert trained.model.loss.weight is None  # evaluate scores an unweighted test loss
    cfg = composed("evaluate", [f"ckpt={payload['best_checkpoint']}",
                                f"paths.data_dir={tmp_path / 'data'}"])  # fmt: skip
    again = evaluate(cfg, tmp_path / "evaluate")
    assert again["metrics"] == pytest.approx(payload["metrics"])


def test_a_checkpoint_that_stored_the_class_weights_still_loads(tmp_path) -> None:
    """Class-weighted checkpoints written before the weights were left out carry loss.weight."""
    payload = train(tiny_run(tmp_path), tmp_path / "run")
    path = Path(payload["best_checkpoint"])
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["loss.weight"] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.save(checkpoint, path)
    assert load_trained(path).model.loss.weight is None


def test_attention_clip_pooling_weighs_the_classes_too(tmp_path, monkeypatch) -> None:
    """clip_pooling=attention trains on clip labels: its loss takes their inverse frequencies."""
    from segser.models import clip_pooling

    given: dict[bool, list] = {True: [], False: []}
    fit = clip_pooling.fit_attention_pooling

    def recording_fit(train_bags, val_bags, num_classes, settings, class_weights=None, seed=0):
        # cross-fitted (issue 26.4): fold k fits on the other folds of the validation clips
        every = torch.cat([train_bags.labels, val_bags.labels])
        given[weighted].append((every, class_weights))
        return fit(train_bags, val_bags, num_classes, settings, class_weights, seed)

    monkeypatch.setattr(clip_pooling, "fit_attention_pooling", recording_fit)
    for weighted in (True, False):
        cfg = tiny_run(tmp_path, f"loss.class_weights={weighted}", "clip_pooling=attention",
                       "clip_pooling.max_epochs=5")  # fmt: skip
        train(cfg, tmp_path / f"run-{weighted}")
    assert given[True] and all(w is None for _, w in given[False])
    labels, weights = given[True][0]  # the fitted clips' labels: every fold gets the same weights
    assert all(torch.equal(w, weights) for _, w in given[True])
    counts = [labels.tolist().count(c) for c in range(4)]
    expected = torch.tensor([len(labels) / (4 * max(n, 1)) for n in counts])
    assert weights is not None
    torch.testing.assert_close(weights, expected)
