"""`python -m segser.evaluate ckpt=...`: re-test a checkpoint on its own run's test clips.

By default the corpus settings and the clip ids come from the checkpoint (no split is drawn
again), the corpus is checked against them, and clips the model trained on are never scored.
`dataset=NAME` on the command line means another corpus: every clip of it is tested.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from segser.data.corpora.clips import Clip
from segser.data.splits import ClipSplit
from segser.errors import SegserError
from segser.models.checkpoint import MODEL_KEYS, RunRecord, literal, load_trained
from segser.models.clip_pooling import pool_clips
from segser.runs.results import write_test_results
from segser.setup.components import build_datamodule, read_corpus
from segser.setup.config_checks import check_config
from segser.setup.entry import CONF_DIR, report_user_errors, run_dir

log = logging.getLogger("segser")


def check_corpus_matches(clips: Sequence[Clip], run: RunRecord, corpus: str) -> None:
    """Every clip id the run stored is still in the corpus, with the same label."""
    labels = {clip.clip_id: clip.label for clip in clips}
    wrong = [
        f"{clip_id} is missing"
        if clip_id not in labels
        else f"{clip_id} is {labels[clip_id]}, the run had {label}"
        for stored in run.clips.values()
        for clip_id, label in stored.items()
        if labels.get(clip_id) != label
    ]
    if wrong:
        raise SegserError(
            f"corpus {corpus} no longer matches the checkpoint's run: {len(wrong)} of its clips "
            f"differ (first: {wrong[0]}). Point at the corpus the run used "
            "(dataset.reader.root=...), or test all clips of a corpus with dataset=NAME."
        )


def clips_to_test(
    clips: Sequence[Clip], run: RunRecord | None, stage: str = "test", other_corpus: bool = False
) -> tuple[list[int], dict[str, Any]]:
    """Indices into `clips` to score and how they were chosen; never a clip the model trained on.

    The run's own corpus: exactly its stored `stage` clip ids. Another corpus: all of its clips.
    """
    corpus = run.dataset.get("name", "?") if run else "?"
    if other_corpus:
        chosen = list(range(len(clips)))
        how: dict[str, Any] = {"clips": "all clips of another corpus than the run's"}
        if run is None:
            log.warning("the checkpoint does not list its training clips: overlap is unchecked")
    else:
        if run is None:
            raise SegserError(
                "the checkpoint does not record its run's corpus and split (an older segser "
                "wrote it). Retrain, or test all clips of a corpus with dataset=NAME."
            )
        check_corpus_matches(clips, run, corpus)
        wanted = run.clips[stage]
        chosen = [i for i, clip in enumerate(clips) if clip.clip_id in wanted]
        how = {"clips": f"the run's {stage} clips", "run_split": run.split}
    trained_on = set(run.clips["train"]) if run else set()
    seen = [clips[i].clip_id for i in chosen if clips[i].clip_id in trained_on]
    if seen:
        raise SegserError(
            f"{len(seen)} of the {len(chosen)} clips to score are clips the model trained on "
            f"(first: {seen[0]}); their scores would say nothing about unseen speech. Drop "
            "dataset=... to test the run's own test clips, or test another corpus."
        )
    return chosen, how


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


def evaluate(
    cfg: DictConfig,
    out_dir: Path,
    other_corpus: bool = False,
    dataset_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Test the checkpoint's model; `other_corpus`: on all clips of cfg.dataset instead.

    `dataset_overrides`: dataset keys the command line set (dataset.reader.root for a corpus
    that moved), applied to the settings the checkpoint stored.
    """
    if cfg.stage not in ("test", "val"):
        raise SegserError(f"stage={cfg.stage} is not known. Use stage=test or stage=val.")
    check_config(cfg)  # before any corpus scan or cache build
    trained = load_trained(cfg.ckpt)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):  # what came from the file is data: escaped, never resolved
        for key in MODEL_KEYS:
            cfg[key] = literal(trained.model_config[key])  # metrics.json says what was tested
        if not other_corpus and trained.run is not None:
            stored = OmegaConf.create(literal(trained.run.dataset))
            for key in dataset_overrides:  # the user's own values, from the command line
                OmegaConf.update(stored, key, OmegaConf.select(cfg.dataset, key), merge=False)
            cfg.dataset = stored
        # The run's own rule: each speaker of the tested corpus standardised with their own
        # statistics (all their clips), on the frozen backbone's cached embeddings.
        cfg.data.speaker_norm = trained.speaker_norm is not None
    L.seed_everything(cfg.seed, workers=True)
    clips = read_corpus(cfg.dataset)
    if other_corpus:
        trained_corpus = trained.run.dataset.get("name", "?") if trained.run else "?"
        clips = test_on_every_clip(clips, trained.classes, trained_corpus, cfg.dataset.name)
    chosen, how = clips_to_test(clips, trained.run, cfg.stage, other_corpus)
    log.info("testing %d clips: %s (%s)", len(chosen), how["clips"], cfg.dataset.name)
    chosen_ids = {clips[i].clip_id for i in chosen}
    description = {"evaluated": cfg.stage, **how}

    def given_split(kept: list[Clip]) -> ClipSplit:
        test = [i for i, c in enumerate(kept) if c.clip_id in chosen_ids]
        return ClipSplit([], [], test, description)

    # cfg now holds the checkpoint's classes, segmentation and features (above)
    # a clip-context backbone is scored as it trained: clips encoded whole, embeddings cached;
    # a speaker_norm run's embeddings are cached too, to be standardised per speaker
    clip_context = getattr(trained.model.backbone, "context", "") == "clip"
    backbone = trained.model.backbone if clip_context or trained.speaker_norm else None
    datamodule = build_datamodule(
        cfg, clips, out_dir / "split.json", backbone=backbone, split=given_split
    )
    datamodule.setup()
    if not datamodule.split.test:
        raise SegserError("none of the clips to test could be read (all skipped as bad clips).")
    if len(datamodule.split.test) < len(chosen):
        skipped = len(chosen) - len(datamodule.split.test)
        log.warning("%d of the clips to test were skipped as bad clips", skipped)
    trainer: L.Trainer = instantiate(cfg.trainer, default_root_dir=out_dir)
    trainer.test(trained.model, datamodule=datamodule)  # what it scored: trained.model.tested
    pooled = pool_clips(trained.model, datamodule, cfg.get("clip_pooling"), cfg.seed)
    return write_test_results(
        cfg,
        out_dir,
        trained.model.tested,
        datamodule,
        clips,
        checkpoint=str(cfg.ckpt),
        epochs_trained=trained.epochs_trained,
        pooled=pooled,
    )


def corpus_choice(task_overrides: Sequence[str]) -> dict[str, Any]:
    """From the command line: another corpus (`dataset=NAME`), or dataset keys to adjust."""
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    keys = [o.key_or_group for o in parsed]
    return {
        "other_corpus": "dataset" in keys,
        "dataset_overrides": [k.removeprefix("dataset.") for k in keys if k.startswith("dataset.")],
    }


@report_user_errors
def run(cfg: DictConfig) -> float | None:
    """The Hydra job; returns the re-tested ALCA."""
    choice = corpus_choice(HydraConfig.get().overrides.task)
    return evaluate(cfg, run_dir(), **choice)["metrics"]["ALCA"]


main = hydra.main(config_path=CONF_DIR, config_name="evaluate", version_base="1.3")(run)

if __name__ == "__main__":
    from segser.evaluate import main as importable_main

    importable_main()
