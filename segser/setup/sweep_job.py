"""A run as one job of a multirun: its W&B group, its GPU, its share of the CPU threads.

Outside a multirun (a single run, a test calling train() in-process) nothing here changes
anything but an explicit `num_threads`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from segser.setup.entry import in_multirun
from segser.setup.job_threads import available_cores, sweep_job_threads

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


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """The thread count as it was on entry, back on exit, for whatever runs next in the process:
    a run sets its own (`num_threads`, a sweep job's share), and the head's one-thread CPU epochs
    restore theirs in the datamodule's teardown, which Lightning skips when fit raises."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
