"""Resume after a kill: the same command in the same run directory goes on from last.ckpt."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from segser.errors import SegserError
from segser.setup.resume import AtomicCheckpointIO, ResumeState, resume_from
from tests.segser_cli import run_segser, segser_command, segser_env

TRAIN = [
    "experiment=demo",
    "dataset.num_clips=48",
    "trainer.max_epochs=5",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping.patience=100",
]


def test_random_state_round_trip_and_weights_only(tmp_path: Path) -> None:
    callback = ResumeState()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.save({"state": callback.state_dict()}, tmp_path / "rng.ckpt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    callback.load_state_dict(torch.load(tmp_path / "rng.ckpt", weights_only=True)["state"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_an_early_stop_already_decided_stays_decided_after_resume() -> None:
    """Lightning does not save trainer.should_stop: a run killed between its early stop and its
    test would otherwise train more epochs (and maybe pick another best checkpoint)."""
    stopping = EarlyStopping(monitor="val/loss", mode="min", patience=2)
    stopping.load_state_dict(
        {"wait_count": 2, "stopped_epoch": 6, "best_score": torch.tensor(0.5), "patience": 2}
    )
    trainer = SimpleNamespace(callbacks=[stopping], ckpt_path="last.ckpt", should_stop=False)
    ResumeState().on_train_start(trainer, None)
    assert trainer.should_stop
    waiting = EarlyStopping(monitor="val/loss", mode="min", patience=2)
    trainer = SimpleNamespace(callbacks=[waiting], ckpt_path="last.ckpt", should_stop=False)
    ResumeState().on_train_start(trainer, None)
    assert not trainer.should_stop


def test_resume_from_picks_last_or_the_given_checkpoint(tmp_path: Path) -> None:
    assert resume_from(tmp_path, None) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 3}, last)
    assert not list(last.parent.glob("*.partial"))
    assert resume_from(tmp_path, None) == str(last)
    other = tmp_path / "other.ckpt"
    torch.save({"epoch": 1}, other)
    assert resume_from(tmp_path, str(other)) == str(other)
    with pytest.raises(SegserError, match=r"ckpt_path=.*not found"):
        resume_from(tmp_path, str(tmp_path / "nope.ckpt"))
    last.write_bytes(last.read_bytes()[:50])  # a damaged last.ckpt: named, with the fix
    with pytest.raises(SegserError, match=r"last\.ckpt: cannot resume from it.*Delete it"):
        resume_from(tmp_path, None)


def test_a_last_checkpoint_of_another_model_config_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """Same run dir, changed model (here the YAMNet layers): one line, not a shape traceback."""
    trained = {"backbone": {"net": {"embedding_layers": [13]}}, "head": {"units": 200}}
    last = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"hyper_parameters": {"model_config": trained}}, last)
    assert resume_from(tmp_path, None, trained) == str(last)
    changed = {"backbone": {"net": {"embedding_layers": [6, 13]}}, "head": {"units": 200}}
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, None, changed)
    message = str(refused.value)
    assert "\n" not in message and str(last) in message
    assert "backbone.net.embedding_layers=[13] -> [6, 13]" in message
    assert "hydra.run.dir" in message and "head.units" not in message


def test_a_ckpt_path_of_another_model_config_is_refused_in_one_line(tmp_path: Path) -> None:
    given = tmp_path / "elsewhere.ckpt"
    torch.save({"hyper_parameters": {"model_config": {"head": {"units": 100}}}}, given)
    assert resume_from(tmp_path, str(given), {"head": {"units": 100}}) == str(given)
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, str(given), {"head": {"units": 400}})
    assert "head.units=100 -> 400" in str(refused.value) and "drop ckpt_path" in str(refused.value)
    given.write_bytes(given.read_bytes()[:40])
    with pytest.raises(SegserError, match=r"elsewhere\.ckpt: cannot resume from it"):
        resume_from(tmp_path, str(given), None)


def test_keys_added_or_removed_since_the_checkpoint_are_named(tmp_path: Path) -> None:
    """A key only one side has (an option added since, or an override dropped) is a change."""
    trained = {"backbone": {"net": {"embedding_layers": [13]}}, "head": {"units": 200}}
    given = tmp_path / "trained.ckpt"
    torch.save({"hyper_parameters": {"model_config": trained}}, given)
    added = {**trained, "head": {"units": 200, "input_norm": True}}
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, str(given), added)
    assert "head.input_norm=None -> True" in str(refused.value)
    assert "head.units" not in str(refused.value) and "\n" not in str(refused.value)
    removed = {"backbone": {"net": {}}, "head": {"units": 200}}
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, str(given), removed)
    assert "backbone.net.embedding_layers=[13] -> None" in str(refused.value)
    renamed = {"backbone": {"net": {"layers": [13]}}, "head": {"units": 200}}
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, str(given), renamed)
    assert "backbone.net.embedding_layers=[13] -> None" in str(refused.value)
    assert "backbone.net.layers=None -> [13]" in str(refused.value)


def test_more_than_three_changes_are_counted(tmp_path: Path) -> None:
    given = tmp_path / "trained.ckpt"
    torch.save({"hyper_parameters": {"model_config": {"a": 1, "b": 2, "c": 3, "d": 4}}}, given)
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, str(given), {"a": 0, "b": 0, "c": 0, "e": 5})
    message = str(refused.value)
    assert "a=1 -> 0, b=2 -> 0, c=3 -> 0 (+2 more)" in message  # d removed, e added


def test_resuming_with_another_head_through_the_cli_is_one_line(tmp_path: Path) -> None:
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    first = run_segser("segser.train", *TRAIN, "trainer.max_epochs=1", run_dir, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed before the end
    again = run_segser(
        "segser.train", *TRAIN, "trainer.max_epochs=1", "head.units=50", run_dir, tmp_path=tmp_path
    )
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    assert "head.units=200 -> 50" in again.stderr


def test_a_run_resumed_from_an_epoch_end_draws_that_epoch_s_batches(tmp_path: Path) -> None:
    """Lightning draws a resumed run's first batch before set_epoch: the sampler must already
    be at the epoch to run, or it replays epoch 0's order there (the runs drifted apart)."""
    common = [*TRAIN, "trainer.max_epochs=3"]
    whole = run_segser("segser.train", *common, f"hydra.run.dir={tmp_path / 'whole'}",
                       tmp_path=tmp_path)  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-3000:]
    run_dir = tmp_path / "stopped"
    first = run_segser("segser.train", *TRAIN, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}",
                       tmp_path=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir / "metrics.json").unlink()  # as if stopped after epoch 0's checkpoint
    rest = run_segser("segser.train", *common, f"hydra.run.dir={run_dir}", tmp_path=tmp_path)
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert "resuming training from" in rest.stderr + rest.stdout
    expected = (tmp_path / "whole" / "predictions.csv").read_text()
    assert (run_dir / "predictions.csv").read_text() == expected


@pytest.mark.slow  # three real training processes: about a minute on 2 busy cores
def test_a_run_killed_with_sigkill_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    reference = run_segser(
        "segser.train", *TRAIN, f"hydra.run.dir={tmp_path / 'unkilled'}", tmp_path=tmp_path
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    run_dir = tmp_path / "killed"
    command = segser_command("segser.train", *TRAIN, f"hydra.run.dir={run_dir}")
    process = subprocess.Popen(
        command, env=segser_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 300
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()  # killed mid-training, not after it
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert killed_at < 4

    resumed = run_segser("segser.train", *TRAIN, f"hydra.run.dir={run_dir}", tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming training from {last}" in resumed.stderr + resumed.stdout
    expected = json.loads((tmp_path / "unkilled" / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    assert got["epochs_trained"] == expected["epochs_trained"] == 5
    assert got["metrics"] == expected["metrics"]
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    reference_rows = (tmp_path / "unkilled" / "predictions.csv").read_text()
    assert (run_dir / "predictions.csv").read_text() == reference_rows


@pytest.mark.slow  # two sweeps of two jobs each
def test_a_sweep_started_again_skips_finished_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *TRAIN, "trainer.max_epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    first = run_segser("segser.train", *args, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    finished = (sweep / "0" / "metrics.json").read_text()
    (sweep / "1" / "metrics.json").unlink()  # job 1 "was killed" before it wrote its results
    again = run_segser("segser.train", *args, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stderr + again.stdout
    assert f"{sweep / '0' / 'metrics.json'} exists: this job finished before, skipped" in log
    assert "skipped" not in log.split(str(sweep / "1"))[-1].split("\n")[0]
    assert (sweep / "0" / "metrics.json").read_text() == finished  # not run again
    assert (sweep / "1" / "metrics.json").is_file()
    assert f"resuming training from {sweep / '1' / 'checkpoints' / 'last.ckpt'}" in log


def test_slurm_requeue_runs_the_same_job_again() -> None:
    """On preemption or timeout submitit calls the launcher's checkpoint(): the same job (same
    overrides and job number, hence the same job directory) is requeued, and resumes there."""
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    from segser.setup.entry import CONF_DIR

    launcher = SlurmLauncher.__new__(SlurmLauncher)
    args = (["seed=1"], "hydra.sweep.dir", 3, "job-id", {})
    delayed = launcher.checkpoint(*args)
    assert delayed.function is launcher and delayed.args == args
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher.max_num_timeout >= 1  # timeouts are requeued, not only preemption


def test_a_run_from_before_the_architecture_rename_resumes(tmp_path: Path) -> None:
    """A checkpoint that stored `backbone.net.params` (before issue 27) resumes under its new
    name `backbone.net.architecture`; a real change of the overrides is still refused."""
    stored = {
        "backbone": {"net": {"bundle": "WAVLM_BASE_PLUS", "params": {"encoder_layer_drop": 0.1}}}
    }
    given = tmp_path / "before_the_rename.ckpt"
    torch.save({"hyper_parameters": {"model_config": stored}}, given)
    today = {
        "backbone": {
            "net": {"bundle": "WAVLM_BASE_PLUS", "architecture": {"encoder_layer_drop": 0.1}}
        }
    }
    assert resume_from(tmp_path, str(given), today) == str(given)
    changed = {
        "backbone": {
            "net": {"bundle": "WAVLM_BASE_PLUS", "architecture": {"encoder_layer_drop": 0.2}}
        }
    }
    with pytest.raises(SegserError) as refused:
        resume_from(tmp_path, str(given), changed)
    assert "backbone.net.architecture.encoder_layer_drop=0.1 -> 0.2" in str(refused.value)
