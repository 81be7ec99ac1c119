"""One search trial = every speaker fold: the objective is the mean validation score over folds.

`hparams_search=<name>` (conf/hparams_search/) runs Hydra's Optuna sweeper with
`search.cross_validate=true`: each trial trains fold 1..split.num_folds in its own directory,
reads each fold's validation score of the best checkpoint (`search.metric`, e.g. UA, or
pooled_UA for the attention-pooling decision) and returns their mean, so Optuna sees one number
per trial. Test speakers are scored and written, never read by the objective. A trial that
finished before (its search.json exists) is not run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from segser.errors import SegserError

log = logging.getLogger("segser")


def fold_config(cfg: DictConfig, fold: int) -> DictConfig:
    """The trial's config with split.fold set and the search switched off."""
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(copy, False)
    copy.split.fold = fold
    copy.search.cross_validate = False
    return copy


def _claim(out_dir: Path, digest: str) -> None:
    """Mark the trial directory with its config; refuse one that holds another trial (Optuna's
    sweeper numbers jobs from 0 in every launch: a resumed study needs a fresh sweep dir)."""
    marker = out_dir / "trial_config.sha256"
    if marker.is_file() and marker.read_text().strip() != digest:
        raise SegserError(
            f"{out_dir} holds another trial's folds: resume a search with a new "
            "hydra.sweep.dir (the default, timestamped, is new each time); the study in "
            "hydra.sweeper.storage carries the finished trials over"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest + "\n")


def cross_validate(
    cfg: DictConfig, out_dir: Path, train: Callable[[DictConfig, Path], dict[str, Any]]
) -> float:
    """Train every fold; write search.json; return the mean validation `search.metric`."""
    summary_file = out_dir / "search.json"
    digest = hashlib.sha256(OmegaConf.to_yaml(cfg).encode()).hexdigest()[:16]
    _claim(out_dir, digest)
    if summary_file.is_file():
        return float(json.loads(summary_file.read_text())["objective"])
    num_folds = cfg.split.get("num_folds")
    if not num_folds:
        raise SegserError(
            "search.cross_validate=true needs split=speaker_folds (split.num_folds folds)"
        )
    metric = cfg.search.metric
    folds = []
    for fold in range(1, int(num_folds) + 1):
        tic = time.perf_counter()
        payload = train(fold_config(cfg, fold), out_dir / f"fold{fold}")
        validation = payload.get("validation", {})
        if metric not in validation:
            raise SegserError(
                f"search.metric={metric} is not a validation score of this run "
                f"({sorted(validation)}); pooled_* needs clip_pooling=attention"
            )
        folds.append(
            {
                "fold": fold,
                "val": validation,
                "test": payload["metrics"],
                "seconds": time.perf_counter() - tic,
            }
        )
        log.info("fold %d: val %s %.3f", fold, metric, validation[metric])
    objective = statistics.fmean(f["val"][metric] for f in folds)
    summary = {"objective": objective, "metric": f"mean val {metric}", "folds": folds}
    summary_file.write_text(json.dumps(summary, indent=2))
    log.info("trial objective (mean val %s over %d folds): %.4f", metric, len(folds), objective)
    return objective


class OptunaStorageDirectory(Callback):
    """Creates the folder of the sweeper's sqlite file before Optuna opens it (sqlite will
    not create folders), so `hparams_search=...` works in a fresh checkout."""

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        storage = str(config.hydra.sweeper.get("storage") or "")
        if storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
