"""What the shipped configs build, composed as a user's run composes them (issue 10 §8).

Bugs planted in conf/ got past tests that pass their own settings: these check the settings
a user gets (label maps, early-stopping and checkpoint monitors, VGGish feature parameters).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from segser.metrics.collection import ACCURACY_NAMES
from segser.setup.components import build_callbacks, feature_settings, read_corpus
from tests.data.test_iemocap import EXPECTED, iemocap_root  # noqa: F401 (a fixture)
from tests.hydra_app import composed, options

CLASSES = ["angry", "happy", "sad", "neutral"]
# The usual IEMOCAP 4-class set: excited is merged into happy (NOTES.md; 1636 = hap + exc).
IEMOCAP_4_CLASSES = {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"}


def test_iemocap_label_map_is_the_four_class_set() -> None:
    cfg = composed("train", [])
    assert dict(cfg.dataset.reader.label_map) == IEMOCAP_4_CLASSES


def test_demo_corpus_uses_the_iemocap_map() -> None:
    cfg = composed("train", ["experiment=demo"])
    assert dict(cfg.dataset.reader.label_map) == IEMOCAP_4_CLASSES


def test_shipped_iemocap_config_reads_a_release_as_the_hand_worked_table(
    iemocap_root: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    """exc and hap become happy; fru, xxx, sur are dropped: with the map a user's run gets."""
    cfg = composed("train", [f"dataset.root={iemocap_root}"])
    clips = read_corpus(cfg.dataset)
    table = [(c.clip_id, c.label, c.speaker, c.session, c.duration_seconds) for c in clips]
    assert table == EXPECTED


@pytest.mark.parametrize("dataset", options("dataset"))
def test_every_corpus_maps_onto_the_classes(dataset: str) -> None:
    """Every label map sends codes only to the run's classes and reaches every class."""
    cfg = composed(
        "train",
        [f"dataset={dataset}", "dataset.csv=x.csv"]
        if dataset == "manifest"
        else [f"dataset={dataset}"],
    )
    label_map = cfg.dataset.reader.get("label_map")
    if label_map is None:  # the manifest's labels are the class names themselves
        assert list(cfg.dataset.reader.classes) == list(cfg.classes)
        return
    assert set(label_map.values()) == set(cfg.classes) == set(CLASSES)


def monitored(cfg, tmp_path: Path) -> tuple[EarlyStopping, ModelCheckpoint]:
    callbacks = build_callbacks(cfg, tmp_path)
    stopping = [c for c in callbacks if isinstance(c, EarlyStopping)]
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    assert len(stopping) == 1 and len(checkpoints) == 1
    return stopping[0], checkpoints[0]


def direction(metric: str) -> str:
    """A loss is minimised, an accuracy maximised: never the other way round."""
    if metric.endswith("loss"):
        return "min"
    assert metric.split("/")[-1] in ACCURACY_NAMES, metric
    return "max"


def test_default_run_stops_and_keeps_best_on_lowest_val_loss(tmp_path: Path) -> None:
    stopping, checkpoint = monitored(composed("train", []), tmp_path)
    assert (stopping.monitor, stopping.mode) == ("val/loss", "min")
    assert (checkpoint.monitor, checkpoint.mode) == ("val/loss", "min")
    # the comparison itself: a lower loss is an improvement for both callbacks
    lower, higher = torch.tensor(1.0), torch.tensor(2.0)
    assert stopping.monitor_op(lower, higher) and not stopping.monitor_op(higher, lower)


@pytest.mark.parametrize("experiment", [None, *options("experiment")])
def test_every_preset_monitors_one_metric_in_its_direction(experiment, tmp_path: Path) -> None:
    overrides = [f"experiment={experiment}"] if experiment else []
    stopping, checkpoint = monitored(composed("train", overrides), tmp_path)
    assert stopping.monitor == checkpoint.monitor
    assert stopping.mode == checkpoint.mode == direction(stopping.monitor)
    # resume after a kill needs a last.ckpt written every epoch
    assert checkpoint.save_last and checkpoint.every_n_epochs == 1
    assert checkpoint.dirpath == str(tmp_path / "checkpoints")


def test_accuracy_monitor_is_maximised(tmp_path: Path) -> None:
    cfg = composed("train", ["monitor.metric=val/ALCA", "monitor.mode=max"])
    stopping, checkpoint = monitored(cfg, tmp_path)
    assert stopping.mode == checkpoint.mode == direction("val/ALCA") == "max"


# Google's vggish_params.py, written out independently of conf/features/vggish.yaml.
VGGISH_REFERENCE = {
    "sample_rate_hz": 16000,
    "stft_window_seconds": 0.025,
    "stft_hop_seconds": 0.010,
    "num_mel_bins": 64,
    "mel_min_hz": 125.0,
    "mel_max_hz": 7500.0,
    "log_offset": 0.01,
    "example_window_seconds": 0.96,
}


@pytest.mark.parametrize("experiment", [None, *options("experiment")])
def test_features_are_the_vggish_reference(experiment) -> None:
    overrides = [f"experiment={experiment}"] if experiment else []
    cfg = composed("train", overrides)
    settings = feature_settings(cfg)
    if cfg.features.get("kind") == "whisper":  # Whisper computes its own log-mel from samples
        assert cfg.backbone.name.startswith("whisper") and settings.sample_rate_hz == 16000
        return
    # YAMNet's frontend (Google's yamnet params) is VGGish's with log(mel + 0.001).
    expected = VGGISH_REFERENCE | ({"log_offset": 0.001} if cfg.backbone.name == "yamnet" else {})
    assert {k: getattr(settings, k) for k in VGGISH_REFERENCE} == expected
    # what the reference derives from them: 400-sample window, 160 hop, FFT 512, 96 frames
    assert (settings.stft_window_samples, settings.stft_hop_samples) == (400, 160)
    assert settings.fft_length == 512
    assert round(settings.example_window_seconds / settings.stft_hop_seconds) == 96


def test_shipped_progress_bar_redraws_a_few_times_a_second(tmp_path: Path) -> None:
    """Lightning's default 100 redraws a second took up to 2 ms a step on busy cores (issue 22)."""
    from lightning.pytorch.callbacks import RichProgressBar

    callbacks = build_callbacks(composed("train", []), tmp_path)
    (bar,) = [c for c in callbacks if isinstance(c, RichProgressBar)]
    assert 0 < bar.refresh_rate <= 10
