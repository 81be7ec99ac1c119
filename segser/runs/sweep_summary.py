"""A Hydra callback that closes a sweep with one line per failed job and a non-zero exit."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from segser.runs.sweeps import load_results

log = logging.getLogger("segser")


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        if (config.get("search") or {}).get("cross_validate"):
            return  # a search's trials keep their folds' metrics one level down (segser.search)
        sweep = load_results(Path(config.hydra.sweep.dir))
        failed, total = sweep.missing, len(sweep.jobs)
        log.info(f"sweep {sweep.root}: {total - len(failed)} of {total} jobs wrote metrics.json")
        for job in failed.itertuples():
            reason = job.error if isinstance(job.error, str) else "no metrics.json (see its log)"
            print(f"error: job {job.path}: {reason}", file=sys.stderr)
        if len(failed):
            print(
                f"error: {len(failed)} of {total} jobs failed; the others' results are in "
                f"{sweep.root}. Summarise them with: python -m segser.report {sweep.root}",
                file=sys.stderr,
            )
            sys.exit(1)
