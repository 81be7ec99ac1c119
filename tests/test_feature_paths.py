"""The feature-path interface: one path per features.kind, each combination works or is
refused in one line, raw-sample segments carry their valid lengths to the backbone."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from segser.data.augment.passes import AugmentSettings
from segser.data.augment.specaugment import PatchMasks
from segser.data.augment.waveform import WaveformAugmentation
from segser.data.datamodule import SegmentDataModule
from segser.data.features import PATHS, feature_path, feature_settings
from segser.data.splits import random_split
from segser.data.waveform.settings import WaveformSettings
from segser.errors import SegserError
from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier
from segser.setup.config_checks import check_config
from tests.data.test_datamodule import datamodule
from tests.hydra_app import composed, options


class LengthSpy(nn.Module):
    """A raw-sample backbone that records the lengths it is given; embedding = valid mean."""

    embedding_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.seen: list[torch.Tensor | None] = []

    def forward(self, segments: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(None if lengths is None else lengths.clone())
        x = segments.flatten(1)
        count = torch.full((len(x),), x.shape[1]) if lengths is None else lengths
        mask = torch.arange(x.shape[1])[None] < count[:, None]
        return self.scale * (x * mask).sum(1, keepdim=True) / count[:, None]


@pytest.mark.parametrize("name", options("features"))
def test_every_shipped_features_config_has_its_path(name: str) -> None:
    cfg = composed("train", [f"features={name}"])
    from omegaconf import OmegaConf

    settings = feature_settings(OmegaConf.to_container(cfg.features, resolve=True))
    path = feature_path(settings)
    assert path.kind == cfg.features.get("kind", "logmel")
    assert type(path) is PATHS[path.kind][0]


def test_an_unknown_kind_names_the_paths() -> None:
    with pytest.raises(ValueError, match="logmel, waveform, whisper"):
        feature_settings({"kind": "mfcc"})


@pytest.mark.parametrize("backbone", ["wavlm_base_plus", "hubert_base", "whisper_tiny_en"])
def test_masks_on_raw_samples_are_refused_at_start_in_one_line(backbone: str) -> None:
    cfg = composed("train", ["experiment=real_speech_yamnet", f"backbone={backbone}"])
    with pytest.raises(SegserError) as raised:
        check_config(cfg)
    message = str(raised.value)
    assert "\n" not in message and "augment.masks=null" in message and "waveform" in message
    # without the masks the waveform perturbations are accepted
    check_config(composed("train", ["experiment=real_speech_yamnet", f"backbone={backbone}",
                                    "augment.masks=null"]))  # fmt: skip
    perturbed = composed("train", ["experiment=real_speech_yamnet", f"backbone={backbone}",
                                   "augment=perturb"])  # fmt: skip
    check_config(perturbed)  # the shipped option without masks
    assert perturbed.augment.masks is None and perturbed.augment.waveform.speed == [0.9, 1.1]


def test_masks_still_apply_to_log_mel_backbones() -> None:
    check_config(composed("train", ["experiment=real_speech_yamnet"]))  # patches: masks on
    check_config(composed("train", ["experiment=real_speech"]))  # whisper: perturbations only


def _waveform_datamodule(clips, tmp_path, **kwargs) -> SegmentDataModule:
    split = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=0)
    return datamodule(clips, tmp_path, split, WaveformSettings(), **kwargs)


def test_fine_tuning_batches_carry_each_segments_valid_samples(tone_clips, tmp_path) -> None:
    dm = _waveform_datamodule(tone_clips, tmp_path)
    dm.prepare_data()
    dm.setup()
    x, _, _, lengths = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (1, 16000)
    rows = dm.datasets["val"].cache_rows[: len(x)]
    assert lengths.tolist() == dm.cache.row_length[rows].tolist()
    assert (lengths < 16000).any()  # the tone clips end inside a window
    for row, length in zip(x[:, 0], lengths, strict=True):
        assert row[length:].abs().sum() == 0  # past the valid samples: the padding only


def test_waveform_augmentation_serves_raw_rows_with_lengths(tone_clips, tmp_path) -> None:
    augment = AugmentSettings(passes=1, waveform=WaveformAugmentation(), masks=None)
    dm = _waveform_datamodule(tone_clips, tmp_path, augment=augment)
    dm.prepare_data()
    dm.setup()
    clean, train = dm.clean_train, dm.datasets["train"]
    assert len(train) > len(clean)
    x, _, _, lengths = train[np.arange(len(train))]
    assert x.shape[1:] == (1, 16000) and len(lengths) == len(train)
    added = x[len(clean) :, 0]
    assert not torch.equal(added[: len(clean)], x[: len(clean), 0])  # perturbed, not copies
    assert (lengths[len(clean) :] <= 16000).all() and (lengths[len(clean) :] > 0).all()


def test_masks_are_refused_by_the_path_too(tone_clips, tmp_path) -> None:
    augment = AugmentSettings(passes=1, waveform=None, masks=PatchMasks())
    dm = _waveform_datamodule(tone_clips, tmp_path, augment=augment)
    dm.prepare_data()
    with pytest.raises(SegserError, match=r"augment\.masks=null"):
        dm.setup()


def test_frozen_waveform_augmentation_embeds_with_lengths(tone_clips, tmp_path) -> None:
    spy = LengthSpy()
    augment = AugmentSettings(passes=1, waveform=WaveformAugmentation(), masks=None)
    dm = _waveform_datamodule(tone_clips, tmp_path, augment=augment, frozen_backbone=spy)
    dm.prepare_data()
    dm.setup()
    assert spy.seen and all(seen is not None for seen in spy.seen)
    assert any((seen < 16000).any() for seen in spy.seen)  # padded tails pooled by length
    x, *_ = dm.datasets["train"][np.arange(len(dm.datasets["train"]))]
    assert x.shape == (len(dm.datasets["train"]), 1)


def test_the_module_passes_lengths_to_the_backbone() -> None:
    spy = LengthSpy()
    model = SegmentEmotionClassifier(spy, ClassificationHead(1, 0, 2), classes=["a", "b"])
    x = torch.ones(3, 1, 10)
    x[2, 0, 4:] = 0
    lengths = torch.tensor([10, 10, 4])
    model.training_step((x, torch.tensor([0, 1, 0]), torch.arange(3), lengths), 0)
    assert torch.equal(spy.seen[-1], lengths)
    assert torch.allclose(model.embed(x, lengths), torch.ones(3, 1))
    model.training_step((x, torch.tensor([0, 1, 0]), torch.arange(3)), 0)
    assert spy.seen[-1] is None


def test_clip_context_augmented_passes_embed_each_clip_whole(tone_clips, tmp_path) -> None:
    """A pass that perturbs nothing gives the clean rows back: the augmented clips are encoded
    whole (embed_clip), exactly as the clip-context cache encodes the clean ones."""
    from segser.data.whisper.settings import WhisperSettings
    from segser.models.whisper import WhisperBackbone
    from tests.whisper_tiny import SMALL_DIMS

    torch.manual_seed(0)
    backbone = WhisperBackbone(size="tiny", dims=SMALL_DIMS[0], context="clip").eval()
    identity = AugmentSettings(passes=1, waveform=None, masks=None)
    split = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=0)
    dm = datamodule(tone_clips, tmp_path, split, WhisperSettings(), augment=identity,
                    frozen_backbone=backbone)  # fmt: skip
    dm.prepare_data()
    dm.setup()
    clean, train = dm.clean_train, dm.datasets["train"]
    everything = np.arange(len(train))
    rows, _, clips, *_ = train[everything]
    added, added_clips = rows[len(clean) :], clips[len(clean) :]
    for clip in clips[: len(clean)].unique():
        mine = rows[: len(clean)][clips[: len(clean)] == clip]
        torch.testing.assert_close(added[added_clips == clip], mine, atol=2e-3, rtol=0)
