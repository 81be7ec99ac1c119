"""Entry points answer bad input with one clear line and no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.segser_cli import run_segser


def run_module(module: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return run_segser(module, *args, tmp_path=tmp_path, timeout=300)


def assert_one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0]


def test_train_without_corpus_root_says_how_to_point_at_it(tmp_path: Path) -> None:
    result = run_module("segser.train", tmp_path=tmp_path)
    assert_one_clear_line(result, "dataset.root=", "IEMOCAP_ROOT", "dataset=demo")


def test_train_with_a_missing_iemocap_root_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_iemocap"
    result = run_module("segser.train", f"dataset.root={missing}", tmp_path=tmp_path)
    assert_one_clear_line(result, str(missing))


def test_train_with_a_missing_weights_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "vggish-10086976.pth"
    result = run_module(
        "segser.train",
        "dataset=demo",
        "dataset.num_clips=8",
        f"backbone.weights={missing}",
        tmp_path=tmp_path,
    )
    assert_one_clear_line(result, str(missing))


def test_evaluate_with_a_missing_checkpoint_names_it(tmp_path: Path) -> None:
    result = run_module(
        "segser.evaluate", f"ckpt={tmp_path / 'nope.ckpt'}", "dataset=demo", tmp_path=tmp_path
    )
    assert_one_clear_line(result, "nope.ckpt")


@pytest.mark.parametrize("module", ["segser.evaluate"])
def test_missing_mandatory_value_is_hydras_one_line(module: str, tmp_path: Path) -> None:
    result = run_module(module, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert_one_clear_line(result, "ckpt=")


def test_a_nan_clip_fails_in_one_line_then_skip_trains_without_it(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = ["path,label,speaker,session"]
    classes = ["angry", "happy", "sad", "neutral"]
    for i in range(40):
        t = np.arange(16000 * (1 + i % 3)) / 16000
        sf.write(corpus / f"c{i:02d}.wav", 0.3 * np.sin(2 * np.pi * 150 * (1 + i % 4) * t), 16000)
        rows.append(f"c{i:02d}.wav,{classes[i % 4]},spk{i % 4},s{i % 2}")
    broken = np.zeros(16000, dtype=np.float32)
    broken[100:200] = np.nan
    sf.write(corpus / "nan.wav", broken, 16000, subtype="FLOAT")
    rows.append("nan.wav,sad,spk1,s1")
    (corpus / "manifest.csv").write_text("\n".join(rows) + "\n")
    args = [
        "experiment=demo_baseline",
        "dataset=manifest",
        f"dataset.csv={corpus / 'manifest.csv'}",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
    ]
    failed = run_module("segser.train", *args, tmp_path=tmp_path)
    assert_one_clear_line(failed, "nan.wav", "NaN")
    skipped = run_module("segser.train", *args, "data.on_bad_clip=skip", tmp_path=tmp_path)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "1 bad clips were skipped" in skipped.stdout + skipped.stderr
    (run,) = [
        p for p in (tmp_path / "outputs" / "runs").glob("*/*") if (p / "metrics.json").exists()
    ]
    assert "nan" not in (run / "split.json").read_text()
