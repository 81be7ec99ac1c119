"""Build the run's parts (corpus, datamodule, model, callbacks, loggers) from a composed config."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.utils import get_object, instantiate
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig, OmegaConf
from torch import nn

from segser.data.augment.passes import augment_settings
from segser.data.corpora.clips import Clip, label_counts
from segser.data.datamodule import SegmentDataModule
from segser.data.features import FeatureSettings
from segser.data.features import feature_settings as settings_from
from segser.data.signal.segmentation import segmentation_settings
from segser.data.splits import ClipSplit
from segser.errors import SegserError
from segser.models.checkpoint import MODEL_KEYS

log = logging.getLogger("segser")


def read_corpus(dataset: DictConfig) -> list[Clip]:
    """The clip table of the configured corpus, or one line on how to point at it."""
    if dataset.get("root") is None:
        raise SegserError(
            f"dataset '{dataset.name}' has no root. Point at the corpus with "
            "dataset.root=/path/to/IEMOCAP_full_release (or export IEMOCAP_ROOT=...), "
            "or try the built-in corpus with dataset=demo."
        )
    # Call outside instantiate(), which would wrap our one-line errors in its own exception.
    clips = instantiate(dataset.reader, _partial_=True)()
    log.info(
        "%s: %d clips %s from %d speakers in %d sessions",
        dataset.name,
        len(clips),
        label_counts(clips),
        len({c.speaker for c in clips}),
        len({c.session for c in clips}),
    )
    return clips


def unlabelled_clips(dataset: DictConfig, clips: list[Clip]) -> list[Clip]:
    """The corpus's other clips of the same speakers (emotion codes outside the label map), for
    per-speaker statistics; none for a reader that cannot list them (a manifest)."""
    reader = get_object(dataset.reader._target_)
    if "keep_unmapped" not in inspect.signature(reader).parameters:
        return []
    known = {clip.clip_id for clip in clips}
    speakers = {clip.speaker for clip in clips}
    every = instantiate(dataset.reader, _partial_=True)(keep_unmapped=True)
    return [c for c in every if c.clip_id not in known and c.speaker in speakers]


def feature_settings(cfg: DictConfig) -> FeatureSettings:
    return settings_from(OmegaConf.to_container(cfg.features, resolve=True))


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint needs to rebuild the model and its input pipeline, as plain data."""
    # Resolve each part in place: its values may interpolate others (optimizer.lr: training.*).
    return {key: OmegaConf.to_container(cfg[key], resolve=True) for key in MODEL_KEYS}


def model_options(cfg: DictConfig) -> dict[str, bool]:
    """What a training run builds its classifier with beside its model config (build_classifier's
    keywords): loss.class_weights and the speed switches (speed.channels_last, speed.compile)."""
    speed = cfg.get("speed") or {}
    return {
        "class_weighted_loss": bool((cfg.get("loss") or {}).get("class_weights", False)),
        "channels_last": bool(speed.get("channels_last", False)),
        "compile_backbone": bool(speed.get("compile", False)),
    }


def build_datamodule(
    cfg: DictConfig,
    clips: list[Clip],
    split_file: Path | None = None,
    backbone: nn.Module | None = None,
    split: Callable[[list[Clip]], ClipSplit] | None = None,
) -> SegmentDataModule:
    """`backbone`: the model's; with backbone.freeze=true (and data.cache_embeddings) the
    datamodule serves its embeddings, computed once and cached, instead of patches.
    `split`: the clips to use, instead of cfg.split's (evaluate's run's own test clips)."""
    speaker_norm = bool(cfg.data.get("speaker_norm", False))
    clip_context = getattr(backbone, "context", "segment") == "clip"  # embedded clip by clip
    frozen = backbone is not None and (
        clip_context
        or (
            OmegaConf.select(cfg, "backbone.freeze", default=False)
            and cfg.data.get("cache_embeddings", True)
        )
    )
    return SegmentDataModule(
        clips=clips,
        classes=list(cfg.classes),
        cache_dir=cfg.paths.cache_dir,
        segmentation=segmentation_settings(cfg.segmentation),
        features=feature_settings(cfg),
        split=split or instantiate(cfg.split),  # a partial: the split function with settings
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        on_bad_clip=cfg.data.on_bad_clip,
        device=cfg.data.get("device", "auto"),
        split_file=split_file,
        frozen_backbone=backbone if frozen else None,
        speaker_norm=speaker_norm,
        augment=augment_settings(_plain(cfg.get("augment"))),
        speaker_clips=unlabelled_clips(cfg.dataset, clips) if speaker_norm and frozen else [],
    )


def ddp_strategy(cfg: DictConfig, model: Any) -> dict[str, Any]:
    """Trainer override for `trainer.strategy=ddp`: DDP looks for parameters without gradients
    exactly when a step can leave a trainable one without (a fine-tuned backbone's layer drop),
    or it stops one step after a drop; the search walks the graph every step, so only then."""
    if cfg.trainer.get("strategy") != "ddp":
        return {}
    skips = not model.freeze_backbone and model.backbone.can_skip_parameters()
    if skips:
        log.info("DDP looks for unused parameters: the fine-tuned backbone drops layers")
    return {"strategy": DDPStrategy(find_unused_parameters=skips)}


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    callbacks = []
    for name, callback_cfg in cfg.callbacks.items():
        if callback_cfg is None:
            continue
        extra = {"dirpath": run_dir / "checkpoints"} if name == "model_checkpoint" else {}
        callbacks.append(instantiate(callback_cfg, **extra))
    return callbacks


def best_checkpoint(callbacks: list[Callback]) -> str | None:
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            return callback.best_model_path or None
    return None


def build_loggers(cfg: DictConfig, run_dir: Path, sweep_group: str | None) -> list[Logger]:
    """Loggers from config; W&B runs offline without an API key and groups a sweep's jobs."""
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if logger_cfg is None:
            continue
        extra: dict[str, Any] = {"save_dir": str(run_dir)}
        if name == "wandb":
            if logger_cfg.get("offline") is None:
                extra["offline"] = not os.environ.get("WANDB_API_KEY")
            if logger_cfg.get("group") is None and sweep_group:
                extra["group"] = sweep_group
            # `config` would clash with instantiate's own first argument: pass it afterwards.
            run_config = OmegaConf.to_container(cfg, resolve=True)
            loggers.append(instantiate(logger_cfg, _partial_=True, **extra)(config=run_config))
            continue
        loggers.append(instantiate(logger_cfg, **extra))
    return loggers


@contextmanager
def loggers_finalized(loggers: list[Logger]) -> Iterator[None]:
    """Every logger finalized when the block ends, "failed" if it raised, and a W&B run finished
    with its exit code: a crashed run still flushes what it logged."""
    status = "failed"
    try:
        yield
        status = "success"
    finally:
        for logger in loggers:
            logger.finalize(status)
        if any(isinstance(logger, WandbLogger) for logger in loggers):
            import wandb

            wandb.finish(exit_code=0 if status == "success" else 1)
