"""LightningDataModule: cached patches -> batches of (patch [B,1,96,64], label [B], clip id [B]).

With a frozen backbone, batches carry its cached embeddings [B, D] instead of patches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from segser.data.cache import PatchCache, build_or_open_cache
from segser.data.clips import Clip
from segser.data.embedding_cache import build_or_open_embeddings
from segser.data.features import LogMelSettings
from segser.data.segmentation import SegmentationSettings
from segser.data.splits import ClipSplit, SplitFunction
from segser.errors import SegserError

log = logging.getLogger("segser")


class SegmentDataset(Dataset):
    """The segments of a subset of clips; clip ids are indices into the clip table.

    `inputs`: the array rows come from, the patch cache's patches [rows, 96, 64] (default) or
    embeddings [rows, D] aligned with them.
    """

    def __init__(
        self,
        cache: PatchCache,
        rows: np.ndarray,
        clip_labels: np.ndarray,
        inputs: np.ndarray | None = None,
    ) -> None:
        self.cache = cache
        self.rows = rows
        self.clip_labels = clip_labels
        self.inputs = cache.patches if inputs is None else inputs

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, int]:
        row = self.rows[item]
        clip = int(self.cache.row_clip[row])
        x = torch.from_numpy(np.array(self.inputs[row], dtype=np.float32))
        return (x.unsqueeze(0) if x.dim() == 2 else x), int(self.clip_labels[clip]), clip

    def segment_index(self) -> np.ndarray:
        """Segment number within its clip for every item, in dataset order."""
        return self.cache.row_segment[self.rows]


class SegmentDataModule(L.LightningDataModule):
    """Builds the feature cache once, splits at clip level, and serves segment batches.

    `split` maps the clips that have patches to a ClipSplit (a conf/split partial).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        classes: Sequence[str],
        cache_dir: str | Path,
        segmentation: SegmentationSettings,
        features: LogMelSettings,
        split: SplitFunction,
        batch_size: int = 32,
        num_workers: int = 0,
        on_bad_clip: str = "fail",
        split_file: str | Path | None = None,
        frozen_backbone: nn.Module | None = None,
    ) -> None:
        """`frozen_backbone`: serve its cached embeddings instead of patches (computed once)."""
        super().__init__()
        self.clips = list(clips)
        self.classes = list(classes)
        unknown = sorted({c.label for c in self.clips} - set(self.classes))
        if unknown:
            raise SegserError(
                f"labels {unknown} are not among classes {self.classes}. "
                "Map them in the dataset's label_map or add them to `classes`."
            )
        if not self.clips:
            raise SegserError("the corpus has no clips with a known label; check dataset.root.")
        self.clip_labels = np.array(
            [self.classes.index(c.label) for c in self.clips], dtype=np.int64
        )
        self.cache_dir = Path(cache_dir)
        self.segmentation = segmentation
        self.features = features
        self.make_split = split
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_bad_clip = on_bad_clip
        self.split_file = Path(split_file) if split_file else None
        self.frozen_backbone = frozen_backbone
        self.cache: PatchCache | None = None
        self.split: ClipSplit | None = None
        self.datasets: dict[str, SegmentDataset] = {}

    def prepare_data(self) -> None:
        """Compute the patches (and frozen embeddings) once (rank 0); later runs reuse them."""
        cache = build_or_open_cache(
            self.clips, self.cache_dir, self.segmentation, self.features, self.on_bad_clip
        )
        if self.frozen_backbone is not None:
            build_or_open_embeddings(cache, self.frozen_backbone)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.cache = build_or_open_cache(
            self.clips, self.cache_dir, self.segmentation, self.features, self.on_bad_clip
        )
        if self.cache.skipped:
            log.warning(
                "%d bad clips were skipped (listed in %s/meta.json)",
                len(self.cache.skipped),
                self.cache.directory,
            )
        kept = self.cache.kept_clip_indices
        split = self.make_split([self.clips[i] for i in kept])
        self.split = ClipSplit(
            [kept[i] for i in split.train],
            [kept[i] for i in split.val],
            [kept[i] for i in split.test],
            split.description,
        )
        if self.split_file is not None:
            self.split.write(self.split_file, self.clips)
        inputs = None
        if self.frozen_backbone is not None:
            inputs = build_or_open_embeddings(self.cache, self.frozen_backbone).embeddings
        for name in ("train", "val", "test"):
            rows = self.cache.rows_for_clips(getattr(self.split, name))
            self.datasets[name] = SegmentDataset(self.cache, rows, self.clip_labels, inputs)
        log.info(
            "segments train/val/test: %s",
            "/".join(str(len(self.datasets[n])) for n in ("train", "val", "test")),
        )

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
