"""Entry points answer bad input with one clear line and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_module(module: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "IEMOCAP_ROOT"}
    env.update(SEGSER_OUTPUT_DIR=str(tmp_path / "outputs"), SEGSER_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


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
