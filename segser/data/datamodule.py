"""LightningDataModule: cached segments -> batches of (input, label [B], clip id [B]).

The input is what the feature path stores (segser.data.feature_path): a log-mel patch
[B, 1, 96, 64], or raw samples [B, 1, samples] followed by each row's valid samples [B] as a
fourth item; with a frozen backbone, its cached embeddings [B, D] instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from segser.data.augment.passes import AugmentSettings, augmented_rows
from segser.data.batches import MappedRows, SegmentRows
from segser.data.cache.embeddings import EmbeddingCache, build_or_open_embeddings
from segser.data.cache.patches import PatchCache
from segser.data.cache.waveforms import WaveformCache
from segser.data.corpora.clips import Clip
from segser.data.features import FeatureSettings, feature_path
from segser.data.loaders import DATA_DEVICES, SplitLoaders
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.speaker_norm import (
    RowPart,
    speaker_statistics,
    standardize_by_speaker,
    training_statistics,
)
from segser.data.splits import ClipSplit, SplitFunction
from segser.errors import SegserError

log = logging.getLogger("segser")


class SegmentDataset(SegmentRows):
    """The segments of a subset of clips; clip ids are indices into the clip table.

    `inputs`: where rows come from, the segment cache's rows (default: patches [rows, 96, 64]
    or waveform segments [rows, samples]) or a frozen backbone's embeddings [rows, D] (an array,
    or an EmbeddingCache's rows).
    """

    def __init__(
        self,
        cache: PatchCache | WaveformCache,
        rows: np.ndarray,
        clip_labels: np.ndarray,
        inputs: np.ndarray | MappedRows | None = None,
    ) -> None:
        clips = cache.row_clip[rows]
        source = cache.rows() if inputs is None else inputs
        if isinstance(source, np.ndarray):
            source = MappedRows(source)
        lengths = getattr(cache, "row_length", None)  # raw samples: each row's valid ones
        lengths = lengths[rows] if inputs is None and lengths is not None else None
        super().__init__(source, rows, clip_labels[clips], clips, lengths)
        self.row_segment = cache.row_segment[rows]

    def segment_index(self) -> np.ndarray:
        """Segment number within its clip for every item, in dataset order."""
        return self.row_segment


class SegmentDataModule(SplitLoaders, L.LightningDataModule):
    """Builds the feature cache once, splits at clip level, and serves segment batches.

    `split` maps the clips that have patches to a ClipSplit (a conf/split partial).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        classes: Sequence[str],
        cache_dir: str | Path,
        segmentation: SegmentationSettings,
        features: FeatureSettings,
        split: SplitFunction,
        batch_size: int = 32,
        num_workers: int = 0,
        on_bad_clip: str = "fail",
        split_file: str | Path | None = None,
        frozen_backbone: nn.Module | None = None,
        device: str = "auto",
        speaker_norm: bool = False,
        augment: AugmentSettings | None = None,
        speaker_clips: Sequence[Clip] = (),
    ) -> None:
        """`frozen_backbone`: serve its cached embeddings instead of patches (computed once).
        `device`: where batches are served from. cuda keeps each split resident on the GPU;
        auto does so when the trainer runs on a GPU and the split fits, else pinned CPU batches.
        `speaker_norm`: standardize each speaker's embeddings with that speaker's statistics
        (segser.data.speaker_norm; test speakers' unlabelled audio included; frozen only).
        `speaker_clips`: more audio of the corpus's speakers (emotions outside the classes),
        used only for their statistics.
        `augment`: add augmented passes of the training clips (segser.data.augment.passes)."""
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
        self.path = feature_path(features)
        self.make_split = split
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_bad_clip = on_bad_clip
        self.split_file = Path(split_file) if split_file else None
        self.frozen_backbone = frozen_backbone
        if device not in DATA_DEVICES:
            raise SegserError(f"data.device must be one of {DATA_DEVICES}, got {device!r}")
        self.device = device
        if speaker_norm and frozen_backbone is None:
            raise SegserError(
                "data.speaker_norm=true standardizes cached embeddings: it needs "
                "backbone.freeze=true (and data.cache_embeddings=true)"
            )
        self.speaker_norm = speaker_norm
        self.speaker_clips = list(speaker_clips)
        self.training_statistics: tuple[np.ndarray, np.ndarray] | None = None  # checkpointed
        self.augment = augment
        self.cache: PatchCache | WaveformCache | None = None
        self.embeddings: EmbeddingCache | None = None
        self._threads_before: int | None = None
        self.split: ClipSplit | None = None
        self.datasets: dict[str, SegmentDataset] = {}
        self.clean_train: SegmentRows | None = None

    def prepare_data(self) -> None:
        """Compute the patches (and frozen embeddings) once (rank 0); later runs reuse them.

        The entries opened here are kept for this process's setup (the other DDP ranks open
        them there), so the clips are not stat'ed and the weights not hashed twice."""
        self.cache = self._open_cache()
        if self.frozen_backbone is not None:
            self.embeddings = build_or_open_embeddings(self.cache, self.frozen_backbone)

    def setup(self, stage: str | None = None) -> None:
        if self.frozen_backbone is not None:  # every stage: teardown gives the threads back
            self._one_thread_for_the_head()
        if self.datasets:
            return
        if self.cache is None:
            self.cache = self._open_cache()
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
            if self.embeddings is None:
                self.embeddings = build_or_open_embeddings(self.cache, self.frozen_backbone)
            inputs = self.embeddings.rows()
        speakers = np.array([c.speaker for c in self.clips])
        stats = None
        if self.speaker_norm:
            labelled = (self.embeddings.embeddings, speakers[self.cache.row_clip])
            labelled += (self.embeddings.center,)
            stats = speaker_statistics([labelled, *self._unlabelled_rows()])
            inputs = standardize_by_speaker(*labelled[:2], stats, labelled[2])
            trained = sorted({self.clips[i].speaker for i in self.split.train})
            self.training_statistics = training_statistics(stats, trained) if trained else None
        for name in ("train", "val", "test"):
            rows = self.cache.rows_for_clips(getattr(self.split, name))
            self.datasets[name] = SegmentDataset(self.cache, rows, self.clip_labels, inputs)
        self.clean_train = self.datasets["train"]  # the training rows without augmented passes
        if self.augment is not None:
            self.datasets["train"] = self._with_augmented_rows(inputs, speakers, stats)
        log.info(
            "segments train/val/test: %s",
            "/".join(str(len(self.datasets[n])) for n in ("train", "val", "test")),
        )

    def serves_embeddings(self) -> bool:
        """True: batches hold the frozen backbone's cached embeddings [B, D], so the model runs
        its head only; False: patches or raw samples, for the backbone."""
        return self.frozen_backbone is not None

    def train_class_counts(self) -> torch.Tensor:
        """Training segments per class [C] (augmented rows included), after setup."""
        return torch.bincount(self.datasets["train"].labels, minlength=len(self.classes))

    def _unlabelled_rows(self) -> list[RowPart]:
        """The speaker clips' embeddings (cached like the labelled ones), for statistics only."""
        if not self.speaker_clips:
            return []
        cache = self._open_cache(self.speaker_clips)
        embeddings = build_or_open_embeddings(cache, self.frozen_backbone)
        speakers = np.array([c.speaker for c in self.speaker_clips])[cache.row_clip]
        return [(embeddings.embeddings, speakers, embeddings.center)]

    def _open_cache(self, clips: Sequence[Clip] | None = None) -> PatchCache | WaveformCache:
        """The segment cache of `clips` (default: the labelled clips) on the features' path."""
        clips = self.clips if clips is None else clips
        return self.path.open_cache(clips, self.cache_dir, self.segmentation, self.on_bad_clip)

    def _with_augmented_rows(
        self, inputs: np.ndarray | MappedRows | None, speakers: np.ndarray, stats: dict | None
    ) -> SegmentRows:
        """The training rows followed by the augmented passes of the training clips (in memory;
        speaker-normalized with each speaker's clean statistics when that is on)."""
        clean = self.datasets["train"]
        extra = augmented_rows(  # every clip's passes, cached once; the training clips' served
            self.clips,
            self.cache.kept_clip_indices,
            self.segmentation,
            self.path,
            self.augment,
            self.cache_dir,
            self.frozen_backbone,
        )
        chosen = np.isin(extra.row_clip, np.asarray(self.split.train, dtype=np.int64))
        added, owners = extra.inputs[chosen], extra.row_clip[chosen]
        if stats is not None:
            added = standardize_by_speaker(added, speakers[owners], stats)
        array = np.concatenate([clean.rows.take(clean.cache_rows), added.astype(np.float32)])
        clips = np.concatenate([clean.clips.numpy(), owners])
        rows = MappedRows(array)
        rows.add_channel = clean.rows.add_channel  # raw segments [B, samples] get their channel
        lengths = None
        if clean.lengths is not None:  # fine-tuning on raw samples: keep each row's valid count
            lengths = np.concatenate([clean.lengths.numpy(), extra.lengths[chosen]])
        return SegmentRows(rows, np.arange(len(array)), self.clip_labels[clips], clips, lengths)

    def _one_thread_for_the_head(self) -> None:
        """A head on cached embeddings is many tiny ops: on CPU a second intra-op thread only adds
        barrier waits (epochs measured 1.2-7x slower), so training uses one; teardown restores."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.strategy.root_device.type != "cpu":
            return
        if self._threads_before is None and torch.get_num_threads() > 1:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
            log.info("training the head on cached embeddings with 1 CPU thread")

    def teardown(self, stage: str) -> None:
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None
