"""`python -m segser.train hparams_search=real_speech ...` as a user runs it, twice: the study's
sqlite file lands in a folder the command creates, and the second run resumes the study.

Each trial's folds are a stand-in training (the search's machinery is what is tested; a fold
returns a validation score from its config), so the whole command takes seconds.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.segser_cli import segser_env

# Runs the real entry point (Hydra, the Optuna sweeper, its callbacks, segser.search) with
# segser.train.train replaced by a stand-in, once per sweep dir given on the command line.
DRIVER = """
import json, sys
import segser.train as entry
from hydra.core.global_hydra import GlobalHydra

def fold(cfg, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    score = round(float(cfg.optimizer.lr) * 100 + 0.01 * cfg.split.fold, 6)
    (out_dir / "fold.json").write_text(json.dumps({"lr": cfg.optimizer.lr}))
    return {"validation": {"UA": score, "WA": score}, "metrics": {"UA": 0.0}}

entry.train = fold
args, sweep_dirs = sys.argv[1].split(), sys.argv[2:]
for sweep_dir in sweep_dirs:
    sys.argv = ["segser.train", *args, f"hydra.sweep.dir={sweep_dir}"]
    try:
        entry.main()
    except SystemExit as done:
        if done.code:
            raise
    GlobalHydra.instance().clear()
"""
ARGS = (
    "experiment=real_speech_yamnet hparams_search=real_speech dataset=demo split=speaker_folds "
    "split.num_folds=2 hydra.sweeper.n_trials=2 hydra.sweeper.sampler.n_startup_trials=2"
)


def _search(tmp_path: Path, *sweep_dirs: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, ARGS, *sweep_dirs],
        capture_output=True, text=True, env=segser_env(tmp_path), timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def _trials(study: Path) -> list[tuple[int, str, float]]:
    with sqlite3.connect(study) as db:
        return list(
            db.execute(
                "select t.number, t.state, v.value from trials t "
                "join trial_values v on v.trial_id = t.trial_id "
                "join studies s on s.study_id = t.study_id "
                "where s.study_name = 'real_speech-demo' order by t.number"
            )
        )


def test_the_search_creates_its_study_folder_and_resumes_the_study(tmp_path: Path) -> None:
    optuna_dir = tmp_path / "outputs" / "optuna"
    study = optuna_dir / "real_speech-demo.db"
    assert not optuna_dir.exists()
    _search(tmp_path, str(tmp_path / "sweep1"))
    assert optuna_dir.is_dir() and study.is_file()  # the file's folder, not a folder named .db
    first = _trials(study)
    assert [(n, s) for n, s, _ in first] == [(0, "COMPLETE"), (1, "COMPLETE")]
    # each trial's objective is the mean of its two folds' validation scores
    for number, _, value in first:
        folds = sorted((tmp_path / "sweep1" / str(number)).glob("fold*/fold.json"))
        assert len(folds) == 2
        lr = json.loads(folds[0].read_text())["lr"]
        assert abs(value - (lr * 100 + 0.015)) < 1e-5
    _search(tmp_path, str(tmp_path / "sweep2"))  # the same command again (a new sweep dir)
    again = _trials(study)
    assert len(again) == 4 and again[:2] == first  # grown; the finished trials kept as they were
    assert all(state == "COMPLETE" for _, state, _ in again)
    assert len(list((tmp_path / "sweep2").glob("*/fold*/fold.json"))) == 4  # 2 new trials ran


def test_the_storage_callback_makes_the_folder_not_the_file(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from segser.search import OptunaStorageDirectory

    where = tmp_path / "a" / "b" / "study.db"
    config = OmegaConf.create({"hydra": {"sweeper": {"storage": f"sqlite:///{where}"}}})
    OptunaStorageDirectory().on_multirun_start(config)
    assert where.parent.is_dir() and not where.exists()  # sqlite creates the file itself
    sqlite3.connect(where).close()  # and can: no folder in its way
    OptunaStorageDirectory().on_multirun_start(config)  # a second launch: the folder exists
    assert where.is_file()
