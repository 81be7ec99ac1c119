"""A Hydra callback that closes a sweep with one line per failed job and a non-zero exit."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("segser")


class SweepSummary(Callback):
    """After all jobs ran: how many wrote metrics.json, and why the others did not."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sorted(
            (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
        )
        failed = [job for job in jobs if not (job / "metrics.json").exists()]
        log.info(
            "sweep %s: %d of %d jobs wrote metrics.json",
            sweep_dir,
            len(jobs) - len(failed),
            len(jobs),
        )
        for job in failed:
            note = job / "error.txt"
            reason = note.read_text().strip() if note.exists() else "no metrics.json (see its log)"
            print(f"error: job {job}: {reason}", file=sys.stderr)
        if failed:
            print(
                f"error: {len(failed)} of {len(jobs)} jobs failed; the others' results are in "
                f"{sweep_dir}. Summarise them with: python -m segser.report {sweep_dir}",
                file=sys.stderr,
            )
            sys.exit(1)
