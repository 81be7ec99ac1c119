"""`segser.predict` on new audio: streamed predictions equal the model on whole-file patches."""

from __future__ import annotations

import csv
import json
import subprocess
import tracemalloc
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from hydra import compose, initialize_config_dir

import segser.predict as predict_module
from segser.data.logmel.clip_patches import segment_patches
from segser.data.signal.audio import resample, stream_resampler
from segser.data.signal.segmentation import count_segments, segment_waveform
from segser.data.signal.stream import SegmentCutter
from segser.metrics.clip_accuracy import clip_votes
from segser.models.checkpoint import load_classifier
from segser.predict import main, predict
from segser.setup.entry import CONF_DIR
from segser.train import train
from tests.conftest import SHARED_EMODB
from tests.segser_cli import run_segser

WINDOW, HOP = 1.0, 0.5  # the fixture trains with overlapping segments, the harder case to stream


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained in-process on 48 demo clips (as tests/test_train.py does)."""
    tmp = tmp_path_factory.mktemp("predict_run")
    overrides = [
        "experiment=demo_baseline",
        f"paths.data_dir={tmp / 'data'}",
        f"paths.output_dir={tmp / 'outputs'}",
        "dataset.num_clips=48",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
        "segmentation=overlap",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    payload = train(cfg, tmp / "outputs" / "run")
    return Path(payload["best_checkpoint"])


@pytest.fixture(scope="module")
def model(checkpoint: Path):
    return load_classifier(checkpoint)


def emodb(name: str) -> Path:
    path = SHARED_EMODB / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def reference_logits(model, path: Path) -> torch.Tensor:
    """The model on segment_patches of the whole file, read at once and mixed to mono."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    with torch.inference_mode():
        return model(segment_patches(torch.from_numpy(data).mean(dim=1), rate, WINDOW, HOP))


def read_outputs(out_dir: Path, stem: str) -> tuple[list[dict], dict]:
    with open(out_dir / f"{stem}.segments.csv") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((out_dir / f"{stem}.json").read_text())


def probabilities(rows: list[dict], classes: list[str]) -> torch.Tensor:
    return torch.tensor([[float(row[f"p_{c}"]) for c in classes] for row in rows])


def run(checkpoint: Path, out_dir: Path, *inputs: Path, **options):
    options = {"batch_size": 8, "device": "cpu", "block_seconds": 0.37, **options}
    return predict(checkpoint, inputs, out_dir, **options)


def assert_matches_reference(model, path: Path, out_dir: Path, stem: str) -> None:
    rows, payload = read_outputs(out_dir, stem)
    logits = reference_logits(model, path)
    torch.testing.assert_close(
        probabilities(rows, model.classes), logits.softmax(dim=1), atol=1e-4, rtol=0
    )
    assert [float(row["start_s"]) for row in rows] == [i * HOP for i in range(len(logits))]
    reference = clip_votes(logits, torch.zeros(len(logits)), len(model.classes))
    clip = payload["clip"]
    assert clip["mean_logits"]["prediction"] == model.classes[reference.mean_logits_prediction[0]]
    assert clip["majority"]["prediction"] == model.classes[reference.majority_prediction[0]]
    mean_logits = torch.tensor(
        list(clip["mean_logits"]["mean_logits"].values()), dtype=torch.float64
    )
    torch.testing.assert_close(mean_logits, reference.mean_logits[0].double(), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("orig_hz", "new_hz"), [(22050, 16000), (44100, 16000), (8000, 16000)])
@pytest.mark.parametrize("block", [37, 4410, 50_000])
def test_streamed_resampling_equals_whole_signal_resampling(orig_hz, new_hz, block) -> None:
    signal = np.random.default_rng(0).uniform(-1, 1, 3 * orig_hz + 123).astype(np.float32)
    push = stream_resampler(orig_hz, new_hz)
    parts = [push(signal[i : i + block], False) for i in range(0, len(signal), block)]
    streamed = np.concatenate([*parts, push(signal[:0], True)])
    whole = resample(signal, orig_hz, new_hz)
    assert len(whole) == round(len(signal) * new_hz / orig_hz)
    np.testing.assert_array_equal(streamed, whole)  # the same samples, not just close ones


@pytest.mark.parametrize(
    ("window", "hop"), [(1.0, 0.5), (1.0, 1.0), (0.5, 1.0), (0.96, 0.25), (0.3, 0.7)]
)
@pytest.mark.parametrize("length", [1, 15_999, 16_000, 40_001])
@pytest.mark.parametrize("block", [333, 16_000])
@pytest.mark.parametrize("tail", ["pad", "stop"])
def test_segment_cutter_equals_whole_clip_segmentation(window, hop, length, block, tail) -> None:
    signal = torch.rand(length, generator=torch.Generator().manual_seed(1))
    cutter = SegmentCutter(16_000, window, hop, tail)
    parts = [cutter.push(signal[i : i + block]) for i in range(0, length, block)]
    streamed = torch.cat([*parts, cutter.finish()])
    assert torch.equal(streamed, segment_waveform(signal, 16_000, window, hop, tail))


@pytest.mark.parametrize("rate", [16_000, 22_050])
def test_predictions_equal_the_model_on_whole_file_patches(checkpoint, model, tmp_path, rate):
    data, source_rate = sf.read(emodb("03a01Wa.wav"), dtype="float32")
    data = np.concatenate([data, data[: source_rate // 3]])  # 2.33 s: a zero-padded tail
    if rate != source_rate:
        data = AF.resample(torch.from_numpy(data), source_rate, rate).numpy()
    path = tmp_path / f"speech_{rate}.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    rows, errors = run(checkpoint, tmp_path / "out", path)
    assert not errors
    assert_matches_reference(model, path, tmp_path / "out", path.stem)
    resampled = len(resample(data, rate, 16_000))
    assert rows[0]["segments"] == count_segments(resampled, 16_000, WINDOW, HOP)


def test_stereo_is_mixed_to_mono(checkpoint, model, tmp_path) -> None:
    left, rate = sf.read(emodb("03a01Wa.wav"), dtype="float32")
    right, _ = sf.read(emodb("03a01Fa.wav"), dtype="float32")
    length = min(len(left), len(right))
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left[:length], right[:length]], axis=1), rate, subtype="FLOAT")
    run(checkpoint, tmp_path / "out", path)
    assert_matches_reference(model, path, tmp_path / "out", "stereo")
    assert json.loads((tmp_path / "out" / "stereo.json").read_text())["channels"] == 2


def write_long_file(path: Path, minutes: float, rate: int = 16_000) -> int:
    """Gliding tones with changing loudness and noise, written in pieces; returns samples."""
    rng = np.random.default_rng(0)
    total = round(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        for start in range(0, total, 10 * rate):
            t = np.arange(start, min(total, start + 10 * rate)) / rate
            pitch = 120 + 80 * np.sin(2 * np.pi * t / 37)
            tone = np.sin(2 * np.pi * np.cumsum(pitch) / rate) * (0.5 + 0.5 * np.sin(t / 0.5))
            handle.write(0.3 * tone + 0.01 * rng.standard_normal(len(t)))
    return total


def test_long_file_streams_in_bounded_memory(checkpoint, model, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_module, "TIMELINE_BINS", 100)  # the plot's own, fixed, cost
    peaks = {}
    for minutes in (2, 10):
        path = tmp_path / f"long{minutes}.wav"
        samples = write_long_file(path, minutes)
        tracemalloc.start()
        rows, errors = run(checkpoint, tmp_path / "out", path, batch_size=64, block_seconds=5.0)
        peaks[minutes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert not errors
        assert rows[0]["segments"] == count_segments(samples, 16_000, WINDOW, HOP)
    # Reading the 10-minute file at once would alone take 38 MB (float32); streamed, the peak
    # stays at the 2-minute file's (linear growth would be 5x).
    assert peaks[10] < 1.25 * peaks[2], peaks
    assert peaks[10] < 20e6, peaks
    assert_matches_reference(model, tmp_path / "long10.wav", tmp_path / "out", "long10")


def test_folders_outputs_and_name_collisions(checkpoint, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    for folder, name in [("a", "03a01Wa.wav"), ("b", "03a01Fa.wav")]:
        (corpus / folder).mkdir(parents=True)
        (corpus / folder / "clip.wav").write_bytes(emodb(name).read_bytes())
    (corpus / "top.wav").write_bytes(emodb("03a01Nc.wav").read_bytes())
    (corpus / "notes.txt").write_text("not audio")
    rows, errors = run(checkpoint, tmp_path / "flat", corpus)
    assert not errors and [row["output"] for row in rows] == ["top"]

    out = tmp_path / "deep"
    rows, errors = run(checkpoint, out, corpus, corpus / "top.wav", recursive=True)
    assert not errors
    assert [row["output"] for row in rows] == ["clip", "clip-2", "top"]  # top.wav only once
    with open(out / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    for row, line in zip(rows, summary, strict=True):
        segments, payload = read_outputs(out, row["output"])
        info = sf.info(str(row["file"]))
        resampled = round(info.frames * 16_000 / info.samplerate)
        expected = count_segments(resampled, 16_000, WINDOW, HOP)
        assert len(segments) == payload["clip"]["segments"] == expected == int(line["segments"])
        assert line["clip_mean_logits"] == payload["clip"]["mean_logits"]["prediction"]
        assert line["clip_majority"] == payload["clip"]["majority"]["prediction"]
        assert sum(payload["clip"]["majority"]["votes"].values()) == expected
        assert (out / f"{row['output']}.timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert Path(summary[0]["file"]).parent.name == "a"
    assert Path(summary[1]["file"]).parent.name == "b"


def test_bad_files_are_reported_and_the_good_ones_still_done(checkpoint, tmp_path) -> None:
    good = emodb("03a01Wa.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF but not really a wave file")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16_000)
    nan = tmp_path / "nan.wav"  # NaN after 3 s: fails mid-stream, after rows were written
    sf.write(nan, np.r_[np.zeros(48_000), np.nan, np.zeros(100)], 16_000, subtype="FLOAT")
    out = tmp_path / "out"
    rows, errors = run(checkpoint, out, corrupt, good, empty, nan, tmp_path / "missing.wav")
    messages = sorted(str(error) for error in errors)
    assert [m.split(":")[0] for m in messages] == sorted(
        str(p) for p in (corrupt, empty, tmp_path / "missing.wav", nan)
    )
    assert any("NaN" in m for m in messages) and any("empty" in m for m in messages)
    assert [row["output"] for row in rows if "error" not in row] == ["03a01Wa"]
    assert (out / "03a01Wa.json").is_file() and (out / "03a01Wa.timeline.png").is_file()
    assert sorted(p.name for p in out.iterdir() if "nan" in p.name or ".partial" in p.name) == []
    with open(out / "summary.csv") as handle:
        summary = {Path(row["file"]).name: row for row in csv.DictReader(handle)}
    assert set(summary) == {"corrupt.wav", "03a01Wa.wav", "empty.wav", "nan.wav", "missing.wav"}
    assert summary["03a01Wa.wav"]["error"] == "" and "NaN" in summary["nan.wav"]["error"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_segser("segser.predict", *args, timeout=300)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_cli_reports_each_bad_input_in_one_line_and_finishes_the_rest(checkpoint, tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"\x00" * 100)
    no_audio = tmp_path / "no_audio"
    no_audio.mkdir()
    out = tmp_path / "out"
    good = emodb("03a01Wa.wav")
    result = cli(str(checkpoint), str(good), str(corrupt), str(no_audio), "--out", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert str(corrupt) in lines[0] and str(no_audio) in lines[1] and "--recursive" in lines[1]
    assert str(out) in result.stdout
    assert (out / "03a01Wa.segments.csv").is_file()


def test_cli_rejects_a_foreign_checkpoint_in_one_line(tmp_path) -> None:
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    result = cli(str(foreign), str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    [line] = error_lines(result.stderr)
    assert str(foreign) in line and "segser.train" in line


def test_main_names_a_missing_checkpoint_and_an_empty_folder(checkpoint, tmp_path, capsys):
    assert main([str(tmp_path / "nope.ckpt"), str(tmp_path)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert str(tmp_path / "nope.ckpt") in line and "checkpoint not found" in line
    assert main([str(checkpoint), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert str(tmp_path) in line and "no audio" in line


def test_runs_started_in_the_same_second_get_their_own_folders(checkpoint, tmp_path, monkeypatch):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 11, 30, 4, 0, 0)

    monkeypatch.setattr(predict_module, "datetime", FrozenClock)
    monkeypatch.setenv("SEGSER_OUTPUT_DIR", str(tmp_path / "outputs"))
    good = emodb("03a01Wa.wav")
    assert main([str(checkpoint), str(good), "--device", "cpu"]) == 0
    assert main([str(checkpoint), str(good), "--device", "cpu"]) == 0
    runs = sorted(p.name for p in (tmp_path / "outputs" / "predict").iterdir())
    assert runs == ["2026-11-30_04-00-00", "2026-11-30_04-00-00-2"]
    for name in runs:
        assert (tmp_path / "outputs" / "predict" / name / "03a01Wa.json").is_file()


def test_a_segment_with_nan_logits_is_predicted_none_like_the_clip_table(
    checkpoint, model, tmp_path, monkeypatch
):
    """The segments CSV decides as metrics and predictions.csv do (segment_predictions)."""
    from segser.predict import Predictor

    path = tmp_path / "noise.wav"
    sf.write(path, np.random.default_rng(2).uniform(-0.3, 0.3, 3 * 16_000), 16_000)
    finite_logits = Predictor.logits

    def first_segment_diverged(self, segments):
        logits = finite_logits(self, segments).clone()
        logits[0, 0] = float("nan")
        return logits

    monkeypatch.setattr(Predictor, "logits", first_segment_diverged)
    run(checkpoint, tmp_path / "out", path, batch_size=64)
    rows, _ = read_outputs(tmp_path / "out", "noise")
    assert rows[0]["prediction"] == "none"  # argmax over probabilities named a class here
    rest = probabilities(rows[1:], model.classes).argmax(dim=1)
    assert [row["prediction"] for row in rows[1:]] == [model.classes[i] for i in rest]
