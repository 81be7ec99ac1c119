"""K augmented passes over the training clips, computed once and cached beside the patch cache.

Why passes and not on-the-fly augmentation: with a frozen backbone the head trains on cached
embeddings, and an augmented segment needs the backbone again. So each training clip is
perturbed `passes` times (waveform perturbations, then, on the log-mel path, SpecAugment masks
on its patches), its segments made by the run's feature path (segser.data.feature_path), and
each augmented segment is embedded once; the head then trains on the clean rows plus these. A
later run with the same clips, settings and weights reads them from
`<cache_dir>/augmented-<key>.npz`. The passes cover every clip of the corpus, computed once,
so every split and fold (and every search trial) reuses them; the datamodule serves only the
training clips' rows, so validation and test segments are never augmented. Without a frozen
backbone the augmented segments themselves are returned (fine-tuning trains on them), with
each one's valid samples on the raw-sample paths.
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
from segser.data.feature_path import FeaturePath, SegmentInputs
from segser.data.signal.audio import load_audio
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.segments import sample_grid
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
    """Augmented training rows: inputs [rows, ...] (embeddings, patches or raw segments), their
    clips and, for raw segments, their valid samples."""

    inputs: np.ndarray
    row_clip: np.ndarray  # [rows] int64, index into the clip table
    lengths: np.ndarray | None = None  # [rows] int64 on the raw-sample paths


def _key(clips: Sequence[Clip], segmentation, features, settings, backbone_id: str) -> str:
    files = [(c.clip_id, str(c.path), c.path.stat().st_size, c.path.stat().st_mtime_ns)
             for c in clips]  # fmt: skip
    payload = [2, files, asdict(segmentation), asdict(features), repr(settings), backbone_id]
    if not hasattr(features, "num_mel_bins"):  # raw-sample paths: rows carry their lengths
        payload.append("lengths")
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:20]


@torch.no_grad()
def augmented_rows(
    clips: Sequence[Clip],
    clip_indices: Sequence[int],
    segmentation: SegmentationSettings,
    path: FeaturePath,
    settings: AugmentSettings,
    cache_dir: Path,
    frozen_backbone: nn.Module | None = None,
) -> AugmentedRows:
    """`settings.passes` augmented copies of the segments of the clips `clip_indices`, embedded
    by `frozen_backbone` if given (else the path's segments: patches [rows, 96, 64] or raw
    samples [rows, window]); cached on disk by content."""
    if settings.masks is not None and not path.masks:
        raise SegserError(
            f"augment.masks are SpecAugment masks on log-mel patches; features.kind="
            f"{path.kind} stores {path.reads}. Set augment.masks=null (waveform perturbations "
            "still apply)"
        )
    chosen = [clips[i] for i in clip_indices]
    features = path.settings
    backbone_id = "patches"
    if frozen_backbone is not None:
        backbone_id = f"{frozen_backbone!r}-{weights_sha256(frozen_backbone)}"
    cached = Path(cache_dir) / (
        f"augmented-{_key(chosen, segmentation, features, settings, backbone_id)}.npz"
    )
    if cached.is_file():
        with np.load(cached) as stored:
            lengths = stored["lengths"] if "lengths" in stored.files else None
            return AugmentedRows(stored["inputs"], stored["row_clip"], lengths)
    rate = path.sample_rate_hz
    inputs, lengths, owners = [], [], []
    if frozen_backbone is not None:
        frozen_backbone.eval()
    # a clip-context backbone embeds each augmented clip whole, as it embedded the clean ones
    clip_context = getattr(frozen_backbone, "context", "segment") == "clip"
    for pass_index in range(settings.passes):
        for clip_index in clip_indices:
            generator = torch.Generator().manual_seed(
                hash_seed(settings.seed, pass_index, clips[clip_index].clip_id)
            )
            audio = load_audio(clips[clip_index].path, rate)
            if settings.waveform is not None:
                audio = settings.waveform(audio, rate, generator)
            segments = path.clip_inputs(audio, segmentation)
            if clip_context:
                count = len(segments.inputs)
                embedded = _clip_embeddings(frozen_backbone, audio, count, segmentation, rate)
                segments = SegmentInputs(embedded)
            elif settings.masks is not None:
                segments = SegmentInputs(settings.masks(segments.inputs, generator))
            inputs.append(segments.inputs)
            lengths.append(segments.lengths)
            owners.append(np.full(len(segments.inputs), clip_index, dtype=np.int64))
    if clip_context:  # embedded already
        rows = AugmentedRows(torch.cat(inputs).float().numpy(), np.concatenate(owners))
    else:
        stacked = SegmentInputs(torch.cat(inputs), torch.cat(lengths) if path.has_lengths else None)
        rows = _rows(stacked, np.concatenate(owners), frozen_backbone)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial.npz")
    extra = {} if rows.lengths is None else {"lengths": rows.lengths}
    np.savez(partial, inputs=rows.inputs, row_clip=rows.row_clip, **extra)
    partial.replace(cached)
    log.info("augmented training rows: %d (%d passes), cached in %s", len(rows.row_clip),
             settings.passes, cached)  # fmt: skip
    return rows


def _clip_embeddings(
    backbone: nn.Module, audio: torch.Tensor, count: int, segmentation, rate: int
) -> torch.Tensor:
    """Embeddings [count, D] of a clip's segments, the clip encoded once (`embed_clip`)."""
    window, hop = sample_grid(segmentation, rate)
    device = next(backbone.parameters()).device
    starts = torch.arange(count, device=device) * hop
    return backbone.embed_clip(audio.to(device), starts, window).cpu()


def _rows(
    segments: SegmentInputs, owners: np.ndarray, frozen_backbone: nn.Module | None
) -> AugmentedRows:
    """Embedded rows (lengths used, then dropped), or the segments themselves without their
    channel axis, as the segment caches serve them."""
    inputs, lengths = segments
    if frozen_backbone is None:
        kept = None if lengths is None else lengths.numpy()
        return AugmentedRows(inputs[:, 0].float().numpy(), owners, kept)
    device = next(frozen_backbone.parameters()).device
    embedded = []
    for start in range(0, len(inputs), EMBED_BATCH):
        batch = inputs[start : start + EMBED_BATCH].to(device)
        if lengths is None:
            embedded.append(frozen_backbone(batch).cpu())
        else:
            valid = lengths[start : start + EMBED_BATCH].to(device)
            embedded.append(frozen_backbone(batch, valid).cpu())
    return AugmentedRows(torch.cat(embedded).float().numpy(), owners)


def hash_seed(seed: int, pass_index: int, clip_id: str) -> int:
    """A generator seed per (seed, pass, clip): the same draw whichever clips are trained on."""
    digest = hashlib.sha256(f"{seed}/{pass_index}/{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
