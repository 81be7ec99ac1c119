from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch

from segser.data.datamodule import SegmentDataModule
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings, count_segments
from segser.data.splits import loso_split, random_split

CLASSES = ["angry", "happy", "sad", "neutral"]


def datamodule(clips, tmp_path: Path, split=None, features=None, **kwargs) -> SegmentDataModule:
    return SegmentDataModule(
        clips=clips,
        classes=CLASSES,
        cache_dir=tmp_path / "cache",
        segmentation=SegmentationSettings(1.0, 0.5),
        features=features or LogMelSettings(),
        split=split or partial(random_split, ratios=(0.8, 0.1, 0.1), seed=0),
        batch_size=8,
        split_file=tmp_path / "split.json",
        **kwargs,
    )


def test_batches_carry_patch_label_and_clip_id(tone_clips, tmp_path: Path) -> None:
    dm = datamodule(tone_clips, tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    seen: dict[int, int] = {}
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        for patches, labels, clip_ids in loader:
            assert patches.shape[1:] == (1, 96, 64) and patches.dtype == torch.float32
            assert labels.shape == clip_ids.shape == (len(patches),)
            for label, clip in zip(labels.tolist(), clip_ids.tolist(), strict=True):
                assert CLASSES[label] == tone_clips[clip].label  # clip ids survive batching
                seen[clip] = seen.get(clip, 0) + 1
    # every clip appears with exactly its number of segments
    for index, clip in enumerate(tone_clips):
        expected = count_segments(round(clip.duration_seconds * 16000), 16000, 1.0, 0.5)
        assert seen[index] == expected


def test_split_is_disjoint_by_clip_and_written(tone_clips, tmp_path: Path) -> None:
    dm = datamodule(tone_clips, tmp_path)
    dm.setup("fit")
    clips_of = {
        name: {int(c) for _, _, ids in getattr(dm, f"{name}_dataloader")() for c in ids}
        for name in ("train", "val", "test")
    }
    assert not clips_of["train"] & clips_of["test"]
    assert not clips_of["train"] & clips_of["val"]
    assert not clips_of["val"] & clips_of["test"]
    written = json.loads((tmp_path / "split.json").read_text())
    assert sorted(written["test"]) == sorted(tone_clips[i].clip_id for i in clips_of["test"])
    assert written["description"]["name"] == "random"


def test_loso_split_test_set_is_one_session(tone_clips, tmp_path: Path) -> None:
    dm = datamodule(tone_clips, tmp_path, partial(loso_split, fold=2, val_fraction=0.1, seed=0))
    dm.setup("fit")
    sessions = {
        name: {
            tone_clips[int(c)].session
            for _, _, ids in getattr(dm, f"{name}_dataloader")()
            for c in ids
        }
        for name in ("train", "val", "test")
    }
    assert sessions["test"] == {"Ses02"}
    assert "Ses02" not in sessions["train"] | sessions["val"]


def test_split_pickles_small_for_spawned_workers(tone_clips, tmp_path: Path) -> None:
    import pickle

    dm = datamodule(tone_clips, tmp_path)
    dm.setup("fit")
    cache_bytes = (dm.cache.directory / "patches.f32").stat().st_size
    assert len(pickle.dumps(dm.datasets["train"])) < cache_bytes / 20  # the map is not copied


def test_data_device_is_checked(tone_clips, tmp_path: Path) -> None:
    import pytest

    from segser.errors import SegserError

    with pytest.raises(SegserError, match=r"data\.device"):
        datamodule(tone_clips, tmp_path, device="tpu")
    if not torch.cuda.is_available():
        dm = datamodule(tone_clips, tmp_path, device="cuda")
        dm.setup("fit")
        with pytest.raises(SegserError, match="CUDA is unavailable"):
            dm.train_dataloader()


def test_statistics_batches_hold_each_training_row_once_across_ranks(tone_clips, tmp_path):
    """The standardizer's pass: two ranks' shares together are the training split, no row
    repeated (the shuffled shares repeat rows to even out the ranks)."""
    dm = datamodule(tone_clips, tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    train = dm.datasets["train"]

    def rows_of(rank: int) -> list[torch.Tensor]:
        dm._trainer_device = lambda: (torch.device("cpu"), rank, 2)
        return [patches for patches, _, _ in dm.statistics_dataloader()]

    shares = [torch.cat(rows_of(rank)) for rank in (0, 1)]
    expected = train[list(range(len(train)))][0]
    assert len(train) % 2 == 1  # odd: a shuffled share would repeat a row to even the ranks
    torch.testing.assert_close(torch.cat(shares), expected, rtol=0, atol=0)


class PatchMean(torch.nn.Module):
    """A stand-in frozen backbone: each patch's mean log-mel (one number)."""

    embedding_dim = 1

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return patches.flatten(1).mean(1, keepdim=True)


@pytest.mark.parametrize("frozen", [False, True])
def test_what_the_module_may_ask_of_the_datamodule(tone_clips, tmp_path, frozen: bool) -> None:
    """serves_embeddings says what the batches hold (embeddings [B, D] or patches), and
    train_class_counts counts the training segments of each class, in the classes' order."""
    dm = datamodule(tone_clips, tmp_path, frozen_backbone=PatchMean() if frozen else None)
    dm.prepare_data()
    dm.setup("fit")
    inputs, _, _ = next(iter(dm.train_dataloader()))
    assert inputs.shape[1:] == ((1,) if frozen else (1, 96, 64))
    assert dm.serves_embeddings() is frozen
    labels = [int(label) for _, batch, _ in dm.statistics_dataloader() for label in batch]
    counts = dm.train_class_counts()
    assert counts.tolist() == [labels.count(c) for c in range(len(CLASSES))]
    assert counts.sum() == len(dm.datasets["train"]) and len(set(labels)) > 1
