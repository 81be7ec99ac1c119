"""`python -m segser.evaluate ckpt=...`: re-test a checkpoint on a split, write metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from segser.components import build_datamodule, read_corpus
from segser.data.clips import Clip
from segser.entry import CONF_DIR, report_user_errors, run_dir
from segser.errors import SegserError
from segser.models.factory import load_classifier
from segser.train import save_test_results

log = logging.getLogger("segser")


def test_on_every_clip(
    clips: list[Clip], classes: list[str], trained_corpus: str, corpus: str
) -> list[Clip]:
    """A foreign corpus is tested whole: its clips whose class (by name) the model knows."""
    kept = [clip for clip in clips if clip.label in classes]
    dropped = sorted({clip.label for clip in clips} - set(classes))
    log.info(
        "cross-corpus: model trained on %s, testing all %d clips of %s; classes matched by name "
        "%s; dropped labels the model lacks: %s",
        trained_corpus,
        len(kept),
        corpus,
        [name for name in classes if any(clip.label == name for clip in kept)],
        dropped or "none",
    )
    if not kept:
        raise SegserError(
            f"{corpus} has no clip of the model's classes {classes}. Map its codes onto those "
            "names in dataset.label_map"
        )
    return kept


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Test the checkpoint's model on the configured corpus and split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_classifier(cfg.ckpt)
    trained = model.hparams["model_config"]
    # The input pipeline must be the one the model was trained on.
    with open_dict(cfg):
        for key in ("classes", "segmentation", "features"):
            cfg[key] = trained[key]
    if cfg.stage not in ("test", "val"):
        raise SegserError(f"stage={cfg.stage} is not known. Use stage=test or stage=val.")
    L.seed_everything(cfg.seed, workers=True)
    clips = read_corpus(cfg.dataset)
    trained_corpus = trained.get("dataset")
    if trained_corpus is not None and trained_corpus != cfg.dataset.name:
        clips = test_on_every_clip(clips, list(cfg.classes), trained_corpus, cfg.dataset.name)
        with open_dict(cfg):
            cfg.split = {"name": "all", "seed": cfg.seed}
    datamodule = build_datamodule(cfg, clips, split_file=out_dir / "split.json")
    datamodule.setup()
    if cfg.stage == "val":  # evaluate the validation clips through the same test path
        datamodule.datasets["test"] = datamodule.datasets["val"]
        datamodule.split = datamodule.split.__class__(
            datamodule.split.train,
            datamodule.split.val,
            datamodule.split.val,
            {**datamodule.split.description, "evaluated": "val"},
        )
    trainer: L.Trainer = instantiate(cfg.trainer, default_root_dir=out_dir)
    trainer.test(model, datamodule=datamodule)
    return save_test_results(cfg, out_dir, model, datamodule, clips, str(cfg.ckpt), trainer)


@report_user_errors
def run(cfg: DictConfig) -> float | None:
    """The Hydra job; returns the re-tested ALCA."""
    return evaluate(cfg, run_dir())["metrics"]["ALCA"]


main = hydra.main(config_path=CONF_DIR, config_name="evaluate", version_base="1.3")(run)

if __name__ == "__main__":
    from segser.evaluate import main as importable_main

    importable_main()
