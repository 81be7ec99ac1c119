"""torch threads for a sweep's jobs: parallel jobs share the cores instead of each taking all.

torch gives every process as many threads as the machine has cores, so two jobs side by side on
2 cores run 4 threads and spend a third of their time in the kernel switching them. A job of a
local parallel sweep takes cores / (jobs at once), at least 1; `num_threads` set explicitly wins,
and a single run keeps torch's default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as taskset or a cgroup sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_job(cores: int, jobs: int) -> int:
    """Each of `jobs` parallel jobs gets an equal share of `cores`, at least one."""
    return max(1, cores // max(1, jobs))


def joblib_workers(n_jobs: int | None, cores: int) -> int:
    """How many jobs joblib runs at once: n_jobs, or cores + 1 + n_jobs when negative (-1 = all)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)


def sweep_job_threads(launcher: Mapping[str, Any], cores: int) -> int | None:
    """Threads for one job of a sweep run by this launcher config; None: keep torch's default
    (a launcher that places jobs on their own machines, e.g. SLURM, which gives each its cores)."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("JoblibLauncher"):
        return threads_per_job(cores, joblib_workers(launcher.get("n_jobs"), cores))
    if target.endswith("submitit_launcher.LocalLauncher"):
        # submitit_local starts every job of the sweep at once: cpus_per_task each, else one.
        return min(launcher.get("cpus_per_task") or 1, cores)
    return None
