"""hparams_search: one objective per trial from every speaker fold, and a study that resumes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from segser.errors import SegserError
from segser.search import OptunaStorageDirectory, cross_validate
from segser.setup.config_checks import check_config
from tests.hydra_app import composed
from tests.segser_cli import run_segser

REPO = Path(__file__).resolve().parents[1]
EMODB_2S = REPO.parent / "shared" / "data" / "emodb-2s"


def _trial_config(num_folds: int = 3, metric: str = "UA"):
    return OmegaConf.create(
        {"split": {"fold": 1, "num_folds": num_folds},
         "search": {"cross_validate": True, "metric": metric}}
    )  # fmt: skip


def test_a_trial_trains_every_fold_and_returns_their_mean_validation_score(tmp_path) -> None:
    calls = []

    def fake_train(cfg, out_dir: Path) -> dict:
        calls.append((cfg.split.fold, cfg.search.cross_validate, out_dir.name))
        val = {1: 0.5, 2: 0.7, 3: 0.9}[cfg.split.fold]
        return {"validation": {"UA": val, "WA": 0.0}, "metrics": {"UA": 0.1}}

    objective = cross_validate(_trial_config(), tmp_path, fake_train)
    assert objective == pytest.approx(0.7)
    assert calls == [(1, False, "fold1"), (2, False, "fold2"), (3, False, "fold3")]
    summary = json.loads((tmp_path / "search.json").read_text())
    assert [f["val"]["UA"] for f in summary["folds"]] == [0.5, 0.7, 0.9]
    # a finished trial is not trained again (a resumed sweep reaches it again)
    assert cross_validate(_trial_config(), tmp_path, fake_train) == pytest.approx(0.7)
    assert len(calls) == 3


def test_a_directory_holding_another_trial_is_refused(tmp_path) -> None:
    def fake_train(cfg, out_dir):
        return {"validation": {"UA": 0.5}, "metrics": {}}

    cross_validate(_trial_config(), tmp_path, fake_train)
    other = _trial_config()
    other.split.fold = 2  # any other setting: another trial
    with pytest.raises(SegserError, match=r"new hydra\.sweep\.dir"):
        cross_validate(other, tmp_path, fake_train)


def test_an_unknown_metric_or_a_split_without_folds_is_one_clear_error(tmp_path) -> None:
    def fake_train(cfg, out_dir):
        return {"validation": {"UA": 0.5}, "metrics": {}}

    with pytest.raises(SegserError, match="pooled_UA"):
        cross_validate(_trial_config(metric="pooled_UA"), tmp_path / "a", fake_train)
    with pytest.raises(SegserError, match="split=speaker_folds"):
        cross_validate(_trial_config(num_folds=0), tmp_path / "b", fake_train)


@pytest.mark.parametrize(
    ("experiment", "search"),
    [("real_speech_yamnet", "real_speech"), ("real_speech", "real_speech_whisper")],
)
def test_shipped_search_is_optuna_over_folds_with_its_study_on_disk(
    experiment: str, search: str
) -> None:
    cfg = composed("train", [f"experiment={experiment}", f"hparams_search={search}"],
                   return_hydra_config=True)  # fmt: skip
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.storage.startswith(f"sqlite:///{cfg.paths.output_dir}/")
    assert cfg.search.cross_validate and cfg.hydra.mode == RunMode.MULTIRUN
    # every searched option composes: groups exist, keys exist
    for key, space in sweeper.params.items():
        values = re.findall(r"choice\((.*)\)", space)
        for value in values[0].split(",") if values else []:
            chosen = composed("train", [f"experiment={experiment}", f"{key}={value.strip()}"])
            check_config(chosen)  # every searched value is a valid run of this recipe
            if key in ("augment", "segmentation"):
                continue
            assert OmegaConf.select(chosen, key) is not None, key


def test_storage_folder_is_created_before_optuna_opens_it(tmp_path) -> None:
    where = tmp_path / "a" / "b" / "study.db"
    config = OmegaConf.create({"hydra": {"sweeper": {"storage": f"sqlite:///{where}"}}})
    OptunaStorageDirectory().on_multirun_start(config)
    assert where.parent.is_dir()


@pytest.mark.parametrize(
    ("experiment", "backbone"),
    [("real_speech", "whisper_tiny_en"), ("real_speech_yamnet", "yamnet")],
)
def test_real_speech_sets_its_own_training_values(experiment: str, backbone: str) -> None:
    """The preset's values win over train.yaml's (they did not while _self_ came last)."""
    cfg = composed("train", [f"experiment={experiment}"])
    preset = OmegaConf.load(REPO / f"conf/experiment/{experiment}.yaml")
    assert cfg.num_threads == preset.num_threads == 1
    assert cfg.data.speaker_norm == preset.data.speaker_norm
    assert cfg.loss.class_weights == preset.loss.class_weights
    assert cfg.optimizer.lr == preset.optimizer.lr
    assert cfg.trainer.max_epochs == preset.trainer.max_epochs
    assert cfg.callbacks.early_stopping.patience == preset.callbacks.early_stopping.patience
    assert cfg.backbone.name == backbone and cfg.backbone.freeze is True
    assert cfg.head.units == preset.head.units and cfg.head.dropout == preset.head.dropout


@pytest.mark.slow
@pytest.mark.skipif(not EMODB_2S.is_dir(), reason=f"{EMODB_2S} not found")
def test_a_search_run_twice_resumes_its_study(tmp_path) -> None:
    args = ["experiment=real_speech_yamnet", "hparams_search=real_speech", "dataset=emodb",
            f"dataset.root={EMODB_2S}", "split=speaker_folds", "split.num_folds=2",
            "trainer.max_epochs=1", "augment=none", "hydra.sweeper.n_trials=1",
            "hydra.sweeper.sampler.n_startup_trials=1"]  # fmt: skip
    for attempt in range(2):
        done = run_segser("segser.train", *args, f"hydra.sweep.dir={tmp_path}/s{attempt}",
                          tmp_path=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
    study = tmp_path / "outputs" / "optuna" / "real_speech-emodb.db"
    with sqlite3.connect(study) as db:
        states = [row[0] for row in db.execute("select state from trials")]
    assert states == ["COMPLETE", "COMPLETE"]
    assert len(list(tmp_path.glob("s*/0/fold*/metrics.json"))) == 4
