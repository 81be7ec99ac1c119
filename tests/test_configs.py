"""Every config group option and preset composes and instantiates, as the app would do it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from segser.models.factory import build_classifier
from segser.setup.components import build_callbacks, build_loggers, model_config
from segser.setup.entry import CONF_DIR
from tests.hydra_app import options

CONF = Path(CONF_DIR)


def composed(overrides: list[str], config_name: str = "train"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def test_defaults_are_the_papers() -> None:
    cfg = composed([])
    assert cfg.dataset.name == "iemocap"
    assert cfg.optimizer.lr == 1e-6 and cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.data.batch_size == 32
    assert cfg.callbacks.early_stopping.patience == 50
    assert cfg.head.units == 200
    assert (cfg.segmentation.window_seconds, cfg.segmentation.hop_seconds) == (1.0, 0.5)
    assert list(cfg.classes) == ["angry", "happy", "sad", "neutral"]
    assert list(cfg.split.ratios) == [0.8, 0.1, 0.1]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_builds(experiment: str, tmp_path: Path) -> None:
    cfg = composed([f"experiment={experiment}", "backbone.weights=none"])
    model = build_classifier(model_config(cfg))
    example = model.example_input_array  # a patch, or a 1 s segment of samples
    batch = example.expand(2, *example.shape[1:])
    assert model(batch).shape == (2, len(cfg.classes))
    assert build_callbacks(cfg, tmp_path)


@pytest.mark.parametrize(
    "override",
    [
        f"{group}={option}"
        for group in ("segmentation", "split", "dataset", "backbone", "head", "logger")
        for option in options(group)
    ],
)
def test_every_group_option_composes(override: str, tmp_path: Path) -> None:
    extra = ["dataset.csv=corpus.csv"] if override == "dataset=manifest" else []
    cfg = composed([override, "backbone.weights=none", *extra])
    build_classifier(model_config(cfg))
    for logger in build_loggers(cfg, tmp_path, sweep_group=None):
        assert logger.save_dir is None or str(tmp_path) in str(logger.save_dir)


def test_head_units_override_reaches_the_model() -> None:
    cfg = composed(["head.units=400", "backbone.weights=none"])
    model = build_classifier(model_config(cfg))
    assert model.head.layers[0].out_features == 400


# The head preset each backbone selects in its defaults (`override /head: ...`).
HEADS = {"baseline": "logits", "vggish": "mlp"}  # the others: mlp_layer_sum


@pytest.mark.parametrize("backbone", options("backbone"))
def test_a_backbone_selects_a_head_preset(backbone: str) -> None:
    """A backbone picks its head by preset, never by setting head.* keys itself (those made the
    head depend on the defaults list's order); a head the user names wins, as do head.* keys."""
    assert "head" not in OmegaConf.load(CONF / "backbone" / f"{backbone}.yaml")
    preset = HEADS.get(backbone, "mlp_layer_sum")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", [f"backbone={backbone}"], return_hydra_config=True)
    assert cfg.hydra.runtime.choices.head == preset
    assert cfg.head == composed([f"head={preset}"]).head
    assert composed([f"backbone={backbone}", "head=mlp"]).head == composed([]).head
    assert composed([f"backbone={backbone}", "head.units=400"]).head.units == 400


def test_baseline_has_logits_only_head() -> None:
    cfg = composed(["backbone=baseline"])
    model = build_classifier(model_config(cfg))
    linear_layers = [m for m in model.modules() if m.__class__.__name__ == "Linear"]
    assert len(linear_layers) == 3  # 2 hidden layers of the MLP + the logits layer


def test_evaluate_config_composes() -> None:
    cfg = composed(["ckpt=x.ckpt"], config_name="evaluate")
    assert cfg.ckpt == "x.ckpt"
    instantiate(cfg.trainer, default_root_dir="/tmp")


def test_slurm_launcher_and_ddp_trainer_compose() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["experiment=paper_table3", "hydra/launcher=slurm", "trainer=ddp"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.max_epochs == 1000
    assert dict(cfg.hydra.sweeper.params) == {
        "segmentation": "overlap,nonoverlap",
        "seed": "0,1,2,3,4,5",
    }


@pytest.mark.parametrize("split", options("split"))
def test_every_split_config_is_one_partial_that_splits_the_clips(split: str) -> None:
    from tests.data.test_splits import corpus

    clips = corpus(10)
    made = instantiate(composed([f"split={split}", "seed=3"]).split)(clips)
    assert made.description["name"] == split and made.description["seed"] == 3
    assert sorted(made.train + made.val + made.test) == list(range(len(clips)))
