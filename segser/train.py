"""`python -m segser.train`: fit with early stopping, restore the best checkpoint, test, save.

Reads top to bottom: corpus -> datamodule -> model -> callbacks, loggers -> trainer; fit; test;
write metrics.json, predictions.csv and the confusion matrix into the Hydra run directory.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from segser.data.corpora.clips import Clip
from segser.data.datamodule import SegmentDataModule
from segser.models.checkpoint import RunRecorder
from segser.models.clip_pooling import PoolingSettings, pooled_clip_results
from segser.models.factory import build_classifier
from segser.models.module import SegmentEmotionClassifier
from segser.runs.outputs import metrics_payload, prediction_rows, write_metrics, write_predictions
from segser.runs.provenance import backbone_record
from segser.search import cross_validate
from segser.setup.components import (
    best_checkpoint,
    build_callbacks,
    build_datamodule,
    build_loggers,
    ddp_strategy,
    model_config,
    read_corpus,
)
from segser.setup.config_checks import check_config
from segser.setup.cuda_numerics import CudaNumerics, chosen, cuda_numerics
from segser.setup.entry import CONF_DIR, in_multirun, report_user_errors, run_dir
from segser.setup.job_threads import available_cores, sweep_job_threads
from segser.setup.resume import AtomicCheckpointIO, ResumeState, resume_from
from segser.setup.training_settings import describe, training_settings

log = logging.getLogger("segser")


def sweep_group() -> str | None:
    """Jobs of one multirun share a group (W&B dashboards show them together)."""
    if not in_multirun():
        return None
    hydra_cfg = HydraConfig.get()
    experiment = hydra_cfg.runtime.choices.get("experiment") or "sweep"
    stamp = "_".join(Path(hydra_cfg.sweep.dir).parts[-2:])
    return f"{experiment}-{stamp}"


def gpu_for_job(job_num: int, num_gpus: int) -> int:
    """Job j of a sweep trains on GPU j mod G, so n_jobs > G jobs share the GPUs evenly."""
    if num_gpus < 1 or job_num < 0:
        raise ValueError(f"need job_num >= 0 and num_gpus >= 1, got {job_num} and {num_gpus}")
    return job_num % num_gpus


def sweep_job_devices(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Trainer overrides placing this multirun job on its GPU (none outside sweeps or on CPU)."""
    single_gpu = trainer_cfg.get("devices") == 1 and trainer_cfg.get("accelerator") in (
        "auto",
        "gpu",
        "cuda",
    )
    if not (in_multirun() and single_gpu and torch.cuda.is_available()):
        return {}
    index = gpu_for_job(HydraConfig.get().job.num, torch.cuda.device_count())
    log.info("sweep job %d trains on GPU %d", HydraConfig.get().job.num, index)
    return {"accelerator": "gpu", "devices": [index]}


def set_torch_threads(num_threads: int | None) -> None:
    """`num_threads` if set; a local parallel sweep's job takes its share of the cores."""
    if not num_threads and in_multirun():
        num_threads = sweep_job_threads(HydraConfig.get().launcher, available_cores())
        if num_threads:
            log.info("sweep job: %d torch threads (its share of the cores)", num_threads)
    if num_threads:
        torch.set_num_threads(num_threads)


def run_numerics(cfg: DictConfig, device: torch.device) -> CudaNumerics | None:
    """The float32 settings a run on `device` trains with (cuda_numerics; None on CPU)."""
    strict = bool((cfg.get("gpu") or {}).get("strict_fp32", False))
    return chosen(device.type == "cuda", strict, bool(cfg.trainer.get("deterministic")))


def train(cfg: DictConfig, out_dir: Path, group: str | None = None) -> dict[str, Any]:
    """One training run; returns the metrics.json payload. Usable without Hydra's app."""
    check_config(cfg)  # before any corpus scan or cache build
    out_dir.mkdir(parents=True, exist_ok=True)
    set_torch_threads(cfg.get("num_threads"))
    settings = training_settings(cfg)
    log.info("%s", describe(settings))
    L.seed_everything(cfg.seed, workers=True)
    clips = read_corpus(cfg.dataset)
    config = model_config(cfg)
    model = build_classifier(config)
    provenance = backbone_record(config["backbone"], model.backbone)  # before any fine-tuning
    model.class_weighted_loss = bool((cfg.get("loss") or {}).get("class_weights", False))
    datamodule = build_datamodule(cfg, clips, out_dir / "split.json", backbone=model.backbone)
    speed = cfg.get("model") or {}
    model.speed_up(speed.get("channels_last", False), speed.get("compile", False))
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
    status = "failed"
    # The head's one-thread CPU epochs restore the count in the datamodule's teardown, which
    # Lightning skips when fit raises (a diverged run): restored here for whatever runs next.
    threads = torch.get_num_threads()
    with cuda_numerics(numerics):  # restored after the run: torch keeps them process-wide
        try:
            resume = resume_from(out_dir, cfg.get("ckpt_path"), config)
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            epochs_trained = trainer.current_epoch  # epochs run, early stopping or not
            best = best_checkpoint(callbacks)
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            test_results = model.test_results
            # The best checkpoint's validation scores: what a search (segser.search) optimises.
            # Every rank validates (DDP gathers), before the non-zero ranks return.
            (validated,) = trainer.validate(model, datamodule=datamodule, verbose=False)
            model.test_results = test_results
            if not trainer.is_global_zero:  # rank 0 writes what every rank's (unpadded) shard gave
                status = "success"
                return {}
            payload = save_test_results(
                cfg,
                out_dir,
                model,
                datamodule,
                clips,
                best,
                epochs_trained,
                validated,
                settings,
                provenance,
            )
            for logger in loggers:
                if isinstance(logger, WandbLogger):
                    log_to_wandb(logger, out_dir, payload)
            status = "success"
            return payload
        finally:
            torch.set_num_threads(threads)
            for logger in loggers:
                logger.finalize(status)
            if any(isinstance(logger, WandbLogger) for logger in loggers):
                import wandb

                wandb.finish(exit_code=0 if status == "success" else 1)


def save_test_results(
    cfg: DictConfig,
    out_dir: Path,
    model: SegmentEmotionClassifier,
    datamodule: SegmentDataModule,
    clips: list[Clip],
    best: str | None,
    epochs_trained: int,
    validated: dict[str, float] | None = None,
    settings: dict[str, Any] | None = None,
    backbone: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """predictions.csv, metrics.json and the confusion matrix from the test epoch's outputs;
    `settings`: the training settings used (training_settings), recorded by a training run;
    `backbone`: which network and weights (runs.provenance), recorded likewise.

    With clip_pooling set, the attention-pooling head is fitted here and its clip decision is
    added as `pooled_UA` / `pooled_WA` (val and test); the paper's five accuracies, UA and WA
    stay the mean-logits ones. `speaker_norm` says whether test speakers' unlabelled audio
    set their embeddings' statistics."""
    rows = prediction_rows(
        model.test_clips,
        datamodule.datasets["test"].segment_index(),
        [c.clip_id for c in clips],
        list(cfg.classes),
        cfg.segmentation.hop_seconds,
        cfg.segmentation.window_seconds,
    )
    write_predictions(out_dir, rows)
    validation = {k.removeprefix("val/"): float(v) for k, v in (validated or {}).items()
                  if k.removeprefix("val/") in ("UA", "WA", "ALCA", "loss")}  # fmt: skip
    pooled = None
    if cfg.get("clip_pooling"):
        pooling = PoolingSettings(**OmegaConf.to_container(cfg.clip_pooling, resolve=True))
        datasets = {**datamodule.datasets, "train": datamodule.clean_train}
        pooled = pooled_clip_results(model, datasets, len(cfg.classes), pooling, cfg.seed)
        validation.update({f"pooled_{k}": pooled["val"][k] for k in ("UA", "WA")})
    speaker_norm = bool(cfg.data.get("speaker_norm", False))
    statistics = {
        "speaker_statistics": {
            "from": "every clip the corpus has of each speaker: train, val and test clips and "
            "the clips of emotions outside the classes (unlabelled)",
            "clips_outside_the_classes": len(getattr(datamodule, "speaker_clips", [])),
        }
    }
    payload = metrics_payload(
        model.test_results,
        list(cfg.classes),
        validation=validation,
        speaker_norm=speaker_norm,
        **(statistics if speaker_norm else {}),
        pooled_clip_decision=pooled["test"] if pooled else None,
        num_test_clips=len(datamodule.split.test),
        num_test_segments=len(rows),
        split=datamodule.split.description,
        best_checkpoint=best,
        epochs_trained=epochs_trained,
        **({"training": settings} if settings else {}),
        **({"backbone": backbone} if backbone else {}),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    if pooled:
        payload["metrics"].update({f"pooled_{k}": pooled["test"][k] for k in ("UA", "WA")})
    write_metrics(out_dir, payload)
    log.info("test metrics: %s", {k: round(v, 4) for k, v in payload["metrics"].items()})
    log.info("results written to %s", out_dir)
    return payload


def log_to_wandb(logger: WandbLogger, out_dir: Path, payload: dict[str, Any]) -> None:
    """Confusion matrix image and predictions table beside the per-epoch metrics."""
    logger.log_image(key="test/confusion_matrix", images=[str(out_dir / "confusion_matrix.png")])
    with open(out_dir / "predictions.csv", newline="") as handle:
        header, *body = csv.reader(handle)
    logger.log_table(key="test/predictions", columns=header, data=body)
    logger.experiment.summary.update({f"test/{k}": v for k, v in payload["metrics"].items()})


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
