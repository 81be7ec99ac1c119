"""Multirun sweeps: a failed job stops no other and is named at the end; W&B offline, grouped."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from lightning.pytorch.loggers import WandbLogger

from segser.setup.components import build_loggers
from segser.setup.entry import CONF_DIR
from segser.setup.job_threads import available_cores, threads_per_job
from tests.segser_cli import run_segser


def test_a_failing_job_leaves_the_others_running(tmp_path: Path) -> None:
    result = run_segser(
        "segser.train", "-m", "experiment=demo_sweep",
        "hydra.sweeper.params.seed=0", "segmentation=nonoverlap",
        "split=loso", "split.fold=2,9", "dataset.num_clips=40", "trainer.max_epochs=1",
        "callbacks.progress_bar=null", "logger=wandb", tmp_path=tmp_path,
    )  # fmt: skip
    # The sweep ran every job, then says which failed and exits 1.
    assert result.returncode == 1, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: job {sweep / '1'}: split.fold=9 is out of range: allowed 1..5, one fold per "
        "session",  # checked before the job reads the corpus
        f"error: 1 of 2 jobs failed; the others' results are in {sweep}. "
        f"Summarise them with: python -m segser.report {sweep}",
    ]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    good, bad = jobs
    metrics = json.loads((good / "metrics.json").read_text())
    assert metrics["split"] == {"name": "loso", "fold": 2, "test_session": "Ses02", "seed": 0}
    assert not (bad / "metrics.json").exists()
    # two jobs at once (the parallel launcher's n_jobs): each took its share of the cores
    share = threads_per_job(available_cores(), 2)
    assert f"sweep job: {share} torch threads" in (good / "train.log").read_text()
    assert "split.fold=9 is out of range" in (bad / "error.txt").read_text()
    # W&B without an API key: offline runs with the confusion matrix and predictions table
    (run,) = (good / "wandb").glob("offline-run-*")
    assert list(run.glob("files/media/images/test/confusion_matrix*.png"))
    assert list(run.glob("files/media/table/test/predictions*.table.json"))


def test_wandb_logger_is_offline_without_key_and_grouped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["logger=wandb"])
    loggers = build_loggers(cfg, tmp_path, sweep_group="paper_table3-2026-11-25_01-02-03")
    (wandb_logger,) = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    init = wandb_logger._wandb_init
    assert wandb_logger._offline
    assert init["group"] == "paper_table3-2026-11-25_01-02-03"
    assert init["config"]["optimizer"]["lr"] == 1e-6
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    (online,) = [lg for lg in build_loggers(cfg, tmp_path, None) if isinstance(lg, WandbLogger)]
    assert not online._offline


def test_submitit_launcher_runs_the_sweep(tmp_path: Path) -> None:
    """The SLURM launcher's machinery (submitit: pickled jobs, one process each), run locally."""
    result = run_segser(
        "segser.train", "-m", "experiment=demo_baseline",
        "hydra/launcher=submitit_local", "dataset.num_clips=40", "trainer.max_epochs=1",
        "callbacks.progress_bar=null", "seed=0,1", tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    seeds = [json.loads((sweep / j / "metrics.json").read_text())["config"]["seed"] for j in "01"]
    assert seeds == [0, 1]
    # submitit_local starts both jobs at once: one thread each unless cpus_per_task says more
    assert "sweep job: 1 torch threads" in (sweep / "0" / "train.log").read_text()
    assert list(sweep.glob(".submitit/*"))  # submitit's own job folders
