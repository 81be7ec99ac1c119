"""`segser.evaluate` tests the run's own test clips, checks the corpus, skips training clips."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from segser.data.corpora.clips import Clip
from segser.errors import SegserError
from segser.evaluate import clips_to_test, corpus_choice, evaluate
from segser.models.checkpoint import RUN_KEY, RunRecord, load_trained
from segser.train import train
from tests.hydra_app import composed
from tests.segser_cli import run_segser
from tests.test_train import demo_config


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory) -> tuple[Path, dict]:
    """The issue's case: a demo model trained with seed=3 (evaluate used to rebuild seed 0)."""
    tmp_path = tmp_path_factory.mktemp("seeded")
    out_dir = tmp_path / "outputs" / "run"
    payload = train(demo_config(tmp_path, "seed=3"), out_dir)
    return out_dir, payload


def evaluate_config(checkpoint: Path | str, *extra: str):
    """Caches go beside the checkpoint (a tmp dir), never into the repository's data/."""
    data_dir = f"paths.data_dir={Path(checkpoint).parent / 'eval-data'}"
    return composed(
        "evaluate", [f"ckpt={checkpoint}", "+trainer.enable_progress_bar=false", data_dir, *extra]
    )


def clip_ids_in_predictions(out_dir: Path) -> set[str]:
    with open(out_dir / "predictions.csv") as handle:
        return {row["clip_id"] for row in csv.DictReader(handle)}


def edited_checkpoint(source: Path, target: Path, edit) -> Path:
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, target)
    return target


def test_checkpoint_records_the_runs_corpus_and_split(seeded_run) -> None:
    out_dir, payload = seeded_run
    split = json.loads((out_dir / "split.json").read_text())
    run = load_trained(payload["best_checkpoint"]).run
    assert run is not None
    assert {name: sorted(run.clips[name]) for name in ("train", "val", "test")} == {
        name: sorted(split[name]) for name in ("train", "val", "test")
    }
    assert run.split == split["description"] and run.split["seed"] == 3
    assert run.dataset == payload["config"]["dataset"]  # resolved: no interpolation left


def test_default_tests_exactly_the_runs_test_clips_and_reproduces_its_metrics(
    seeded_run, tmp_path: Path
) -> None:
    out_dir, payload = seeded_run
    again = evaluate(evaluate_config(payload["best_checkpoint"]), tmp_path / "eval")
    split = json.loads((out_dir / "split.json").read_text())
    assert clip_ids_in_predictions(tmp_path / "eval") == set(split["test"])
    assert again["num_test_clips"] == len(split["test"])
    for name, value in payload["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, abs=1e-6)
    assert again["split"]["run_split"]["seed"] == 3


def test_stage_val_tests_the_runs_val_clips(seeded_run, tmp_path: Path) -> None:
    out_dir, payload = seeded_run
    evaluate(evaluate_config(payload["best_checkpoint"], "stage=val"), tmp_path / "eval")
    split = json.loads((out_dir / "split.json").read_text())
    assert clip_ids_in_predictions(tmp_path / "eval") == set(split["val"])


def test_epochs_trained_is_the_checkpoints(seeded_run, tmp_path: Path) -> None:
    out_dir, payload = seeded_run
    last = out_dir / "checkpoints" / "last.ckpt"
    again = evaluate(evaluate_config(last), tmp_path / "eval")
    assert again["epochs_trained"] == payload["epochs_trained"] == 2


def test_a_moved_corpus_is_found_with_dataset_reader_root(seeded_run, tmp_path: Path) -> None:
    out_dir, payload = seeded_run
    stored_root = Path(payload["config"]["dataset"]["reader"]["root"])
    moved = tmp_path / "moved"
    shutil.copytree(stored_root, moved)
    cfg = evaluate_config(
        payload["best_checkpoint"],
        f"dataset.reader.root={moved}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    result = evaluate(cfg, tmp_path / "eval", dataset_overrides=["reader.root"])
    assert result["config"]["dataset"]["reader"]["root"] == str(moved)
    assert result["config"]["dataset"]["root"] == str(stored_root)  # the rest as stored
    split = json.loads((out_dir / "split.json").read_text())
    assert clip_ids_in_predictions(tmp_path / "eval") == set(split["test"])
    for name, value in payload["metrics"].items():
        assert result["metrics"][name] == pytest.approx(value, abs=1e-6)


def test_a_changed_corpus_is_named_in_one_line(seeded_run, tmp_path: Path) -> None:
    _, payload = seeded_run

    def relabel(checkpoint: dict) -> None:
        test = checkpoint[RUN_KEY]["clips"]["test"]
        clip_id = sorted(test)[0]
        test[clip_id] = "sad" if test[clip_id] != "sad" else "angry"

    ckpt = edited_checkpoint(Path(payload["best_checkpoint"]), tmp_path / "x.ckpt", relabel)
    with pytest.raises(SegserError, match="no longer matches") as error:
        evaluate(evaluate_config(ckpt), tmp_path / "eval")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_settings_from_the_checkpoint_are_never_resolved(seeded_run, tmp_path: Path) -> None:
    """A checkpoint holding "${oc.env:PATH}" must not put the machine's PATH in metrics.json."""
    _, payload = seeded_run
    probe = "${oc.env:PATH}"

    def plant(checkpoint: dict) -> None:
        checkpoint["hyper_parameters"]["model_config"]["segmentation"]["note"] = probe
        checkpoint["hyper_parameters"]["model_config"]["backbone"]["name"] = probe
        checkpoint[RUN_KEY]["dataset"]["name"] = probe

    ckpt = edited_checkpoint(Path(payload["best_checkpoint"]), tmp_path / "x.ckpt", plant)
    result = evaluate(evaluate_config(ckpt), tmp_path / "eval")
    written = (tmp_path / "eval" / "metrics.json").read_text()
    assert os.environ["PATH"] not in written
    assert result["config"]["segmentation"]["note"] == probe
    assert result["config"]["backbone"]["name"] == probe
    assert result["config"]["dataset"]["name"] == probe


def test_refuses_to_score_training_clips(seeded_run, tmp_path: Path) -> None:
    _, payload = seeded_run

    def leak(checkpoint: dict) -> None:
        clips = checkpoint[RUN_KEY]["clips"]
        clips["test"] |= dict(list(clips["train"].items())[:3])

    ckpt = edited_checkpoint(Path(payload["best_checkpoint"]), tmp_path / "x.ckpt", leak)
    with pytest.raises(
        SegserError, match=r"3 of the \d+ clips to score are clips the model trained on"
    ):
        evaluate(evaluate_config(ckpt), tmp_path / "eval")
    # dataset=... naming the run's own corpus would test its training clips too
    data_dir = payload["config"]["paths"]["data_dir"]
    same = evaluate_config(
        payload["best_checkpoint"],
        "dataset=demo",
        "dataset.num_clips=48",
        f"paths.data_dir={data_dir}",
    )
    with pytest.raises(SegserError, match="clips the model trained on"):
        evaluate(same, tmp_path / "eval2", other_corpus=True)


def test_another_corpus_tests_all_its_clips(seeded_run, tmp_path: Path) -> None:
    _, payload = seeded_run
    rows = ["path,label,speaker,session"]
    for i, label in enumerate(["angry", "happy", "sad", "neutral"] * 2):
        path = tmp_path / "other" / f"other{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, torch.randn(16000 + 3000 * i).numpy() * 0.1, 16000)
        rows.append(f"{path},{label},s{i % 2},s{i % 2}")
    (tmp_path / "other.csv").write_text("\n".join(rows) + "\n")
    cfg = evaluate_config(
        payload["best_checkpoint"],
        "dataset=manifest",
        f"dataset.csv={tmp_path / 'other.csv'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    result = evaluate(cfg, tmp_path / "eval", other_corpus=True)
    assert result["num_test_clips"] == 8
    assert len(clip_ids_in_predictions(tmp_path / "eval")) == 8
    assert result["split"]["clips"] == "all clips of another corpus than the run's"


def clip(clip_id: str, label: str) -> Clip:
    return Clip(clip_id, Path(f"{clip_id}.wav"), label, "spk", "ses", 1.0)


RECORD = RunRecord(
    {"name": "toy"},
    {"name": "random", "seed": 3},
    {"train": {"a": "sad", "b": "happy"}, "val": {"c": "sad"}, "test": {"d": "angry"}},
)


def test_clips_to_test_picks_stored_ids_or_all_clips() -> None:
    clips = [clip("d", "angry"), clip("a", "sad"), clip("c", "sad"), clip("b", "happy")]
    assert clips_to_test(clips, RECORD)[0] == [0]
    assert clips_to_test(clips, RECORD, stage="val")[0] == [2]
    other = [clip("x", "sad"), clip("y", "angry")]
    assert clips_to_test(other, RECORD, other_corpus=True)[0] == [0, 1]
    with pytest.raises(SegserError, match="2 of the 4 clips"):
        clips_to_test(clips, RECORD, other_corpus=True)
    with pytest.raises(SegserError, match="d is missing"):
        clips_to_test(clips[1:], RECORD)
    with pytest.raises(SegserError, match="older segser"):
        clips_to_test(clips, None)


def test_corpus_choice_reads_the_command_line() -> None:
    assert corpus_choice(["ckpt=x", "stage=val"]) == {
        "other_corpus": False,
        "dataset_overrides": [],
    }
    assert corpus_choice(["dataset=emodb", "dataset.root=/r"])["other_corpus"]
    assert corpus_choice(["dataset.reader.root=/moved"]) == {
        "other_corpus": False,
        "dataset_overrides": ["reader.root"],
    }


@pytest.mark.slow  # a subprocess: ~30 s on 2 busy cores
def test_cli_tests_the_runs_own_split_by_default(seeded_run, tmp_path: Path) -> None:
    out_dir, payload = seeded_run
    result = run_segser(
        "segser.evaluate",
        f"ckpt={payload['best_checkpoint']}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        tmp_path=tmp_path,
        extra_env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the run's test clips" in result.stderr + result.stdout
    split = json.loads((out_dir / "split.json").read_text())
    assert clip_ids_in_predictions(tmp_path / "eval") == set(split["test"])
