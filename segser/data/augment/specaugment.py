"""SpecAugment-style time and frequency masks on log-mel patches (Park et al., 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PatchMasks:
    """`time_masks` masks of up to `time_mask_frames` frames and `freq_masks` masks of up to
    `freq_mask_bins` mel bins, drawn independently for every patch. Masked cells take the
    patch's mean (a log-mel patch has no natural zero: log(0 + offset) is its floor)."""

    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 8

    def __call__(self, patches: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Masked copy of patches [..., frames, bins]."""
        out = patches.clone()
        flat = out.reshape(-1, *out.shape[-2:])
        fill = flat.mean(dim=(1, 2))
        for axis, count, width in (
            (1, self.time_masks, self.time_mask_frames),
            (2, self.freq_masks, self.freq_mask_bins),
        ):
            size = flat.shape[axis]
            for _ in range(count):
                lengths = torch.randint(0, width + 1, (len(flat),), generator=generator)
                starts = (torch.rand(len(flat), generator=generator) * (size - lengths + 1)).long()
                positions = torch.arange(size)
                masked = (positions >= starts[:, None]) & (positions < (starts + lengths)[:, None])
                mask = masked[:, :, None] if axis == 1 else masked[:, None, :]
                flat.copy_(torch.where(mask, fill[:, None, None], flat))
        return out
