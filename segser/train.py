"""`python -m segser.train`: compose, build, fit, test, write.

Hydra composes the config; train() builds the corpus, model, datamodule, callbacks, loggers and
trainer from it, fits with early stopping, tests the best checkpoint and writes metrics.json,
predictions.csv and the confusion matrix into the run directory (segser.runs.results).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from segser.models.checkpoint import RunRecorder
from segser.models.clip_pooling import pool_clips
from segser.models.factory import build_classifier
from segser.runs.provenance import backbone_record
from segser.runs.results import log_to_wandb, write_test_results
from segser.search import cross_validate
from segser.setup.components import (
    best_checkpoint,
    build_callbacks,
    build_datamodule,
    build_loggers,
    ddp_strategy,
    loggers_finalized,
    model_config,
    model_options,
    read_corpus,
)
from segser.setup.config_checks import check_config
from segser.setup.cuda_numerics import cuda_numerics, run_numerics
from segser.setup.entry import CONF_DIR, in_multirun, report_user_errors, run_dir
from segser.setup.resume import AtomicCheckpointIO, ResumeState, resume_from
from segser.setup.sweep_job import (
    set_torch_threads,
    sweep_group,
    sweep_job_devices,
    torch_threads_kept,
)
from segser.setup.training_settings import describe, training_settings

log = logging.getLogger("segser")


def train(cfg: DictConfig, out_dir: Path, group: str | None = None) -> dict[str, Any]:
    """One training run; returns the metrics.json payload. Usable without Hydra's app."""
    check_config(cfg)  # before any corpus scan or cache build
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads_kept():  # the run's thread count while it runs, the caller's after
        set_torch_threads(cfg.get("num_threads"))
        return fit_test_write(cfg, out_dir, group)


def fit_test_write(cfg: DictConfig, out_dir: Path, group: str | None) -> dict[str, Any]:
    """Build the run's parts, fit, test the best checkpoint and write its results."""
    settings = training_settings(cfg)
    log.info("%s", describe(settings))
    L.seed_everything(cfg.seed, workers=True)

    # Build: corpus, model, datamodule, callbacks, loggers, trainer.
    clips = read_corpus(cfg.dataset)
    config = model_config(cfg)
    model = build_classifier(config, **model_options(cfg))
    provenance = backbone_record(config["backbone"], model.backbone)  # before any fine-tuning
    datamodule = build_datamodule(cfg, clips, out_dir / "split.json", backbone=model.backbone)
    # Checkpoints carry the run's corpus and split (evaluate tests the same clips) and the
    # random generators (a resumed run draws what an unkilled one would).
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    callbacks = [*build_callbacks(cfg, out_dir), RunRecorder(dataset), ResumeState()]
    loggers = build_loggers(cfg, out_dir, group)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=out_dir,
        plugins=[AtomicCheckpointIO()],
        **sweep_job_devices(cfg.trainer),
        **ddp_strategy(cfg, model),
    )
    numerics = run_numerics(cfg, trainer.strategy.root_device)
    if numerics is not None:
        log.info("float32 on CUDA: %s", numerics)
    # torch keeps the CUDA settings process-wide: restored after (the thread count: by train).
    with cuda_numerics(numerics), loggers_finalized(loggers):
        # Fit (from this run dir's last checkpoint, if a killed run left one).
        resume = resume_from(out_dir, cfg.get("ckpt_path"), config)
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        epochs_trained = trainer.current_epoch  # epochs run, early stopping or not

        # Test the best checkpoint; the test epoch leaves what it scored in model.tested.
        best = best_checkpoint(callbacks)
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        # The best checkpoint's validation scores: what a search (segser.search) optimises.
        # Every rank validates (DDP gathers), before the non-zero ranks return. Validating
        # leaves model.tested as the test epoch left it: only a test epoch sets it.
        (validated,) = trainer.validate(model, datamodule=datamodule, verbose=False)
        if not trainer.is_global_zero:  # rank 0 writes what every rank's (unpadded) shard gave
            return {}

        # Write: clip pooling (clip_pooling=attention) on the best model, then the results.
        pooled = pool_clips(model, datamodule, cfg.get("clip_pooling"), cfg.seed)
        payload = write_test_results(
            cfg,
            out_dir,
            model.tested,
            datamodule,
            clips,
            checkpoint=best,
            epochs_trained=epochs_trained,
            validated=validated,
            pooled=pooled,
            settings=settings,
            backbone=provenance,
        )
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                log_to_wandb(logger, out_dir, payload)
        return payload


@report_user_errors
def run(cfg: DictConfig) -> float | None:
    """The Hydra job; returns test ALCA so sweepers can optimise it."""
    if (cfg.get("search") or {}).get("cross_validate"):  # a search trial: every fold inside
        return cross_validate(cfg, run_dir(), train)
    finished = run_dir() / "metrics.json"
    if in_multirun() and finished.is_file():  # a sweep started again reruns only the rest
        log.info("%s exists: this job finished before, skipped", finished)
        return json.loads(finished.read_text())["metrics"]["ALCA"]
    payload = train(cfg, run_dir(), sweep_group())
    return payload["metrics"]["ALCA"] if payload else None


main = hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")(run)

if __name__ == "__main__":
    # Call the importable module's main, so that parallel launchers pickle `run` by reference.
    from segser.train import main as importable_main

    importable_main()
