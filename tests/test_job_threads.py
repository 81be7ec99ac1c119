"""A local parallel sweep's jobs share the cores; a single run keeps torch's default."""

from __future__ import annotations

import pytest

from segser.setup.job_threads import joblib_workers, sweep_job_threads, threads_per_job
from tests.hydra_app import composed


@pytest.mark.parametrize(
    ("cores", "jobs", "threads"),
    [(2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 1, 16), (16, 2, 8), (16, 4, 4), (16, 3, 5)],
)
def test_each_job_gets_its_share_of_the_cores(cores: int, jobs: int, threads: int) -> None:
    assert threads_per_job(cores, jobs) == threads


@pytest.mark.parametrize(
    ("n_jobs", "cores", "workers"),
    [(2, 16, 2), (-1, 16, 16), (-2, 16, 15), (-1, 2, 2), (-4, 2, 1), (None, 16, 1), (1, 16, 1)],
)
def test_joblib_counts_workers_as_joblib_does(n_jobs, cores: int, workers: int) -> None:
    assert joblib_workers(n_jobs, cores) == workers


def launcher(*overrides: str):
    """hydra.launcher as a job of `python -m segser.train -m ...` sees it."""
    return composed("train", list(overrides), return_hydra_config=True).hydra.launcher


@pytest.mark.parametrize(
    ("overrides", "cores", "threads"),
    [
        # the presets' launcher (parallel: joblib, 2 jobs at once)
        (["experiment=paper_table4"], 2, 1),
        (["experiment=paper_table4"], 16, 8),
        (["experiment=paper_table4", "hydra.launcher.n_jobs=4"], 2, 1),
        (["experiment=paper_table4", "hydra.launcher.n_jobs=4"], 16, 4),
        (["experiment=paper_table4", "hydra.launcher.n_jobs=1"], 2, 2),
        (["hydra/launcher=joblib"], 16, 1),  # joblib's own default: every core busy, 1 each
        (["hydra/launcher=submitit_local"], 16, 1),  # starts every job at once
        (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=4"], 16, 4),
        (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=4"], 2, 2),
        (["hydra/launcher=slurm"], 16, None),  # SLURM gives each job its own cores
        ([], 16, None),  # the basic launcher runs one job at a time: torch's default
    ],
)
def test_threads_for_the_shipped_launchers(overrides, cores: int, threads) -> None:
    assert sweep_job_threads(launcher(*overrides), cores) == threads
