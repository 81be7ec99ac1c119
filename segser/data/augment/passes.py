"""K augmented passes over the training clips, computed once and cached beside the patch cache.

Why passes and not on-the-fly augmentation: with a frozen backbone the head trains on cached
embeddings, and an augmented segment needs the backbone again. So each training clip is
perturbed `passes` times (waveform perturbations, then SpecAugment masks on its patches), and
each augmented patch is embedded once; the head then trains on the clean rows plus these. A
later run with the same clips, settings and weights reads them from
`<cache_dir>/augmented-<key>.npz`. The passes cover every clip of the corpus, computed once,
so every split and fold (and every search trial) reuses them; the datamodule serves only the
training clips' rows, so validation and test segments are never augmented. Without a frozen
backbone the augmented patches themselves are returned (fine-tuning trains on them).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segser.data.augment.specaugment import PatchMasks
from segser.data.augment.waveform import WaveformAugmentation
from segser.data.cache.embeddings import weights_sha256
from segser.data.corpora.clips import Clip
from segser.data.logmel.clip_patches import clip_patches
from segser.data.logmel.features import LogMelPatcher, LogMelSettings
from segser.data.signal.audio import load_audio
from segser.data.signal.segmentation import SegmentationSettings
from segser.errors import SegserError

log = logging.getLogger("segser")
EMBED_BATCH = 256


@dataclass(frozen=True)
class AugmentSettings:
    """What conf/augment/*.yaml sets: how many passes, and what each pass perturbs."""

    passes: int = 2
    waveform: WaveformAugmentation | None = field(default_factory=WaveformAugmentation)
    masks: PatchMasks | None = field(default_factory=PatchMasks)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.passes < 1:
            raise SegserError(f"augment.passes={self.passes}: give at least 1 (or augment=none)")


def augment_settings(config: dict | None) -> AugmentSettings | None:
    """From conf/augment (None or passes 0: no augmentation)."""
    if not config or not config.get("passes"):
        return None
    waveform = config.get("waveform")
    masks = config.get("masks")
    return AugmentSettings(
        passes=int(config["passes"]),
        waveform=WaveformAugmentation(**{k: _tuple(v) for k, v in waveform.items()})
        if waveform
        else None,
        masks=PatchMasks(**masks) if masks else None,
        seed=int(config.get("seed", 0)),
    )


def _tuple(value):
    return tuple(value) if isinstance(value, list | tuple) else value


@dataclass
class AugmentedRows:
    """Augmented training rows: inputs [rows, ...] (embeddings or patches) and their clips."""

    inputs: np.ndarray
    row_clip: np.ndarray  # [rows] int64, index into the clip table


def _key(clips: Sequence[Clip], segmentation, features, settings, backbone_id: str) -> str:
    files = [(c.clip_id, str(c.path), c.path.stat().st_size, c.path.stat().st_mtime_ns)
             for c in clips]  # fmt: skip
    payload = [1, files, asdict(segmentation), asdict(features), repr(settings), backbone_id]
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:20]


@torch.no_grad()
def augmented_rows(
    clips: Sequence[Clip],
    clip_indices: Sequence[int],
    segmentation: SegmentationSettings,
    features: LogMelSettings,
    settings: AugmentSettings,
    cache_dir: Path,
    frozen_backbone: nn.Module | None = None,
) -> AugmentedRows:
    """`settings.passes` augmented copies of the segments of the clips `clip_indices`, embedded
    by `frozen_backbone` if given (else patches [rows, 96, 64]); cached on disk by content."""
    chosen = [clips[i] for i in clip_indices]
    backbone_id = "patches"
    if frozen_backbone is not None:
        backbone_id = f"{frozen_backbone!r}-{weights_sha256(frozen_backbone)}"
    path = Path(cache_dir) / (
        f"augmented-{_key(chosen, segmentation, features, settings, backbone_id)}.npz"
    )
    if path.is_file():
        with np.load(path) as stored:
            return AugmentedRows(stored["inputs"], stored["row_clip"])
    patcher = LogMelPatcher(features)
    rate = features.sample_rate_hz
    inputs, owners = [], []
    if frozen_backbone is not None:
        frozen_backbone.eval()
    for pass_index in range(settings.passes):
        for clip_index in clip_indices:
            generator = torch.Generator().manual_seed(
                hash_seed(settings.seed, pass_index, clips[clip_index].clip_id)
            )
            audio = load_audio(clips[clip_index].path, rate)
            if settings.waveform is not None:
                audio = settings.waveform(audio, rate, generator)
            patches = clip_patches(audio, patcher, segmentation)
            if settings.masks is not None:
                patches = settings.masks(patches, generator)
            inputs.append(patches)
            owners.append(np.full(len(patches), clip_index, dtype=np.int64))
    patches = torch.cat(inputs)
    if frozen_backbone is not None:
        device = next(frozen_backbone.parameters()).device
        patches = torch.cat(
            [
                frozen_backbone(batch.unsqueeze(1).to(device)).cpu()
                for batch in patches.split(EMBED_BATCH)
            ]
        )
    rows = AugmentedRows(patches.float().numpy(), np.concatenate(owners))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, inputs=rows.inputs, row_clip=rows.row_clip)
    partial.replace(path)
    log.info("augmented training rows: %d (%d passes), cached in %s", len(rows.row_clip),
             settings.passes, path)  # fmt: skip
    return rows


def hash_seed(seed: int, pass_index: int, clip_id: str) -> int:
    """A generator seed per (seed, pass, clip): the same draw whichever clips are trained on."""
    digest = hashlib.sha256(f"{seed}/{pass_index}/{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
