"""A tested run's results written into its directory: predictions.csv, metrics.json and the
confusion matrix (train and evaluate alike), and the same shown in W&B beside the epochs."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from segser.data.corpora.clips import Clip
from segser.data.datamodule import SegmentDataModule
from segser.models.module import ScoredTest
from segser.runs.outputs import metrics_payload, prediction_rows, write_metrics, write_predictions

log = logging.getLogger("segser")
VALIDATION_SCORES = ("UA", "WA", "ALCA", "loss")  # of the best checkpoint, what a search reads


def write_test_results(
    cfg: DictConfig,
    out_dir: Path,
    tested: ScoredTest,
    datamodule: SegmentDataModule,
    clips: list[Clip],
    *,
    checkpoint: str | None,
    epochs_trained: int,
    validated: dict[str, float] | None = None,
    pooled: dict[str, dict] | None = None,
    settings: dict[str, Any] | None = None,
    backbone: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """predictions.csv, metrics.json and the confusion matrix from what the test epoch scored;
    returns the metrics.json payload. `validated`: the validation epoch's logged scores;
    `pooled`: the clip-pooling step's results (models.clip_pooling.pool_clips), added as
    `pooled_UA` / `pooled_WA` (val and test) while the paper's five accuracies, UA and WA stay
    the mean-logits ones; `settings`: the training settings used (training_settings);
    `backbone`: which network and weights (runs.provenance). `speaker_norm` says whether test
    speakers' unlabelled audio set their embeddings' statistics."""
    rows = prediction_rows(
        tested.clips,
        datamodule.datasets["test"].segment_index(),
        [c.clip_id for c in clips],
        list(cfg.classes),
        cfg.segmentation.hop_seconds,
        cfg.segmentation.window_seconds,
    )
    write_predictions(out_dir, rows)
    validation = {k.removeprefix("val/"): float(v) for k, v in (validated or {}).items()
                  if k.removeprefix("val/") in VALIDATION_SCORES}  # fmt: skip
    if pooled:
        validation.update({f"pooled_{k}": pooled["val"][k] for k in ("UA", "WA")})
    speaker_norm = bool(cfg.data.get("speaker_norm", False))
    statistics = {
        "speaker_statistics": {
            "from": "every clip the corpus has of each speaker: train, val and test clips and "
            "the clips of emotions outside the classes (unlabelled)",
            "clips_outside_the_classes": len(datamodule.speaker_clips),
        }
    }
    payload = metrics_payload(
        tested.results,
        list(cfg.classes),
        validation=validation,
        speaker_norm=speaker_norm,
        **(statistics if speaker_norm else {}),
        pooled_clip_decision=pooled["test"] if pooled else None,
        num_test_clips=len(datamodule.split.test),
        num_test_segments=len(rows),
        split=datamodule.split.description,
        best_checkpoint=checkpoint,
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
