"""Real-corpus protocols from the command line: speaker folds as one multirun, the report
pooling them into one configuration, and a cross-corpus evaluate on every foreign clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.report import build_report
from tests.segser_cli import run_segser

EMOTION_HZ = {"W": 300.0, "F": 500.0, "T": 150.0, "N": 220.0}  # EmoDB letter -> tone pitch
RAVDESS_CODE = {"W": "05", "F": "03", "T": "04", "N": "01"}


def tone(hz: float, seconds: float = 1.2, rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * hz * t)


def write_emodb(root: Path) -> None:
    for speaker in ("03", "08", "09", "10"):
        for letter, hz in EMOTION_HZ.items():
            for version in "ab":
                sf.write(root / "wav" / f"{speaker}a0{'12'[version == 'b']}{letter}{version}.wav",
                         tone(hz), 16000)  # fmt: skip


def write_ravdess(root: Path) -> list[str]:
    names = []
    for actor in ("01", "02"):
        folder = root / f"Actor_{actor}"
        folder.mkdir(parents=True)
        for letter, code in RAVDESS_CODE.items():
            name = f"03-01-{code}-01-01-01-{actor}"
            sf.write(folder / f"{name}.wav", tone(EMOTION_HZ[letter], 1.5, 48000), 48000)
            names.append(name)
        sf.write(folder / f"03-01-02-01-01-01-{actor}.wav", tone(400.0, 1.5, 48000), 48000)  # calm
    return sorted(names)


@pytest.mark.slow
def test_speaker_folds_multirun_report_and_cross_corpus_evaluate(tmp_path: Path) -> None:
    emodb, ravdess = tmp_path / "emodb", tmp_path / "ravdess"
    (emodb / "wav").mkdir(parents=True)
    write_emodb(emodb)
    ravdess_clips = write_ravdess(ravdess)
    sweep_dir = tmp_path / "sweep"
    trained = run_segser(
        "segser.train", "-m", "dataset=emodb", f"dataset.root={emodb}", "backbone=baseline",
        "split=speaker_folds", "split.num_folds=2", "split.fold=1,2", "trainer.max_epochs=2",
        "callbacks.progress_bar=null", f"hydra.sweep.dir={sweep_dir}", tmp_path=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    tested = []
    for job in ("0", "1"):
        split = json.loads((sweep_dir / job / "split.json").read_text())
        speakers = {name: {c[:2] for c in split[name]} for name in ("train", "val", "test")}
        assert not speakers["test"] & (speakers["train"] | speakers["val"])
        tested += speakers["test"]
    assert sorted(tested) == ["03", "08", "09", "10"]

    report = build_report(sweep_dir)
    assert len(report.table.columns) == 1  # the two folds pool into one column
    assert "(2)" in report.markdown

    ckpt = sweep_dir / "0" / "checkpoints" / "best.ckpt"
    evaluated = run_segser(
        "segser.evaluate", f"ckpt={ckpt}", "dataset=ravdess", f"dataset.root={ravdess}",
        f"hydra.run.dir={tmp_path / 'eval'}", tmp_path=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "cross-corpus: model trained on emodb, testing all 8 clips of ravdess" in (
        evaluated.stdout + evaluated.stderr
    )
    split = json.loads((tmp_path / "eval" / "split.json").read_text())
    assert (split["train"], split["val"], sorted(split["test"])) == ([], [], ravdess_clips)
