"""In a sweep, an explicit num_threads wins over the launcher's share, for every launcher segser
ships (the Optuna search runs on Hydra's basic launcher); left null, the share applies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import segser.setup.sweep_job as job_module
import segser.train as train_module
from tests.hydra_app import composed

CORES = 16
LAUNCHERS = {  # overrides -> the launcher's own share of 16 cores (None: torch's default)
    "parallel (the presets')": (["experiment=paper_table4"], 8),
    "joblib": (["hydra/launcher=joblib"], 1),
    "submitit_local": (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=4"], 4),
    "slurm": (["hydra/launcher=slurm"], None),
    "basic (Optuna search)": (
        ["experiment=real_speech_yamnet", "hparams_search=real_speech"],
        None,
    ),
}


class StopAfterThreads(Exception):
    """Raised where train() goes on after setting its threads, with the count it set."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        self.threads = threads


@pytest.fixture
def sweep_job(monkeypatch):
    """train() as a job of a multirun launched by the composed launcher, on 16 cores."""
    threads = torch.get_num_threads()

    def enter(cfg) -> None:
        hydra = SimpleNamespace(launcher=cfg.hydra.launcher)
        monkeypatch.setattr(job_module, "in_multirun", lambda: True)
        monkeypatch.setattr(job_module, "HydraConfig", SimpleNamespace(get=lambda: hydra))
        monkeypatch.setattr(job_module, "available_cores", lambda: CORES)

        def stop(cfg):
            raise StopAfterThreads(torch.get_num_threads())

        monkeypatch.setattr(train_module, "training_settings", stop)

    yield enter
    torch.set_num_threads(threads)


def _threads_of_a_job(sweep_job, overrides: list[str], tmp_path) -> int:
    cfg = composed("train", [*overrides, "dataset=demo"], return_hydra_config=True)
    sweep_job(cfg)
    torch.set_num_threads(5)  # neither the share nor the explicit value
    with pytest.raises(StopAfterThreads) as stopped:
        train_module.train(cfg, tmp_path / "run")
    assert torch.get_num_threads() == 5  # the caller's count is back once train() ends
    return stopped.value.threads


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_explicit_num_threads_wins_over_the_launchers_share(launcher, sweep_job, tmp_path):
    overrides, _ = LAUNCHERS[launcher]
    assert _threads_of_a_job(sweep_job, [*overrides, "num_threads=3"], tmp_path) == 3


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_without_num_threads_a_job_takes_its_launchers_share(launcher, sweep_job, tmp_path):
    overrides, share = LAUNCHERS[launcher]
    overrides = [*overrides, "num_threads=null"]  # real_speech sets 1: back to the default
    assert _threads_of_a_job(sweep_job, overrides, tmp_path) == (share or 5)


def test_the_search_preset_itself_sets_one_thread_per_trial(sweep_job, tmp_path) -> None:
    overrides, _ = LAUNCHERS["basic (Optuna search)"]
    assert _threads_of_a_job(sweep_job, overrides, tmp_path) == 1
