"""Whisper's audio encoder (Radford et al., 2022) on raw 16 kHz segments, every published size.

The network is OpenAI's AudioEncoder, with its parameter names, so OpenAI's `encoder.*` state
dict loads strictly: two 3-tap convolutions with GELU (the second of stride 2, so 50 frames a
second, one per 320 samples), sinusoidal positions, pre-LN residual attention blocks with a GELU
MLP (4x wide), and a final layer norm. Whisper always feeds 30 s (1500 frames); here a segment's
own frames go through with the positions sliced to them (input="segment", ~30x cheaper for 1 s),
or, with input="padded_30s", Whisper's zero-padded 30 s input, pooling only the segment's frames.

Rule: `layer_outputs` index 0 = convolutions + positions, 1..n = each block, n+1 = the final
layer norm of block n; the chosen ones are mean-pooled over the segment's valid frames and
concatenated, so head.layer_sum weighs them as for the SSL backbones. Weights: whisper_weights.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segser.data.whisper.logmel import SETTINGS, WhisperLogMel, clip_pieces, padded_rows_log_mel
from segser.errors import SegserError
from segser.models.backbone import Backbone, LayerRange
from segser.models.weights import load_strictly
from segser.models.whisper_weights import (
    WHISPER_DIMS,
    WhisperDims,
    read_encoder_weights,
    whisper_dims,
)

SAMPLES_PER_FRAME = 2 * SETTINGS.stft_hop_samples  # 320: one encoder frame per 20 ms
INPUTS = ("segment", "padded_30s")


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's positions [length, channels]: sines then cosines of geometric timescales."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class _Attention(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)  # Whisper's key has no bias
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        batch, frames, width = x.shape
        # one matmul for q, k and v (about 10% faster on CPU than three); the key's bias is 0
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, torch.zeros_like(self.query.bias), self.value.bias])
        qkv = F.linear(x, weight, bias).view(batch, frames, 3, self.n_head, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(attended.transpose(1, 2).reshape(batch, frames, width))


class _Block(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn = _Attention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(
            nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state)
        )
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.attn_ln(x), mask)
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """Log-mel [B, n_mels, F] -> encoder frames [B, ceil(F / 2), n_audio_state], every layer."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.dims = dims
        state = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(state, state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(dims.n_audio_ctx, state))
        self.blocks = nn.ModuleList(
            _Block(state, dims.n_audio_head) for _ in range(dims.n_audio_layer)
        )
        self.ln_post = nn.LayerNorm(state)

    def layer_outputs(
        self, mel: Tensor, frames_valid: Tensor | None = None, last_layer: int | None = None
    ) -> list[Tensor]:
        """Outputs [B, T, D] of layers 0..last_layer (default: all, n + 2 of them).

        `frames_valid`: valid log-mel frames per row of a zero-padded batch. A row's padding
        is then zero at each convolution's input and masked out of attention, so its valid
        frames equal those of the row run alone (Whisper itself never masks)."""
        last = len(self.blocks) + 1 if last_layer is None else last_layer
        mask = None
        if frames_valid is not None and bool((frames_valid < mel.shape[-1]).any()):
            mel_mask = torch.arange(mel.shape[-1], device=mel.device) < frames_valid[:, None]
            mel = mel * mel_mask[:, None, :]
            x = F.gelu(self.conv1(mel)) * mel_mask[:, None, :]
            x = F.gelu(self.conv2(x))
            valid = (frames_valid + 1) // 2
            mask = (torch.arange(x.shape[-1], device=x.device) < valid[:, None])[:, None, None]
        else:
            x = F.gelu(self.conv2(F.gelu(self.conv1(mel))))
        frames = x.shape[-1]
        if frames > self.dims.n_audio_ctx:
            raise SegserError(
                f"a Whisper input of {frames} encoder frames ({frames * SAMPLES_PER_FRAME} "
                f"samples) is longer than its {self.dims.n_audio_ctx} positions (30 s). Use "
                "shorter segments (segmentation.window_seconds <= 30)"
            )
        x = x.transpose(1, 2) + self.positional_embedding[:frames]
        outputs = [x]
        for block in self.blocks[: min(last, len(self.blocks))]:
            x = block(x, mask)
            outputs.append(x)
        if last > len(self.blocks):
            outputs.append(self.ln_post(x))
        return outputs

    def forward(self, mel: Tensor) -> Tensor:
        return self.layer_outputs(mel)[-1]


def layer_range(count: int) -> LayerRange:
    """The `embedding_layers` of an encoder with `count` layer outputs (blocks + 2)."""
    return LayerRange.layer_outputs(
        count,
        f"Whisper layer indices 0-{count - 1} (0 = convolutions, 1-{count - 2} = blocks, "
        f"{count - 1} = final layer norm)",
    )


class WhisperBackbone(Backbone):
    """Segments [B, 1, samples] at 16 kHz -> the chosen encoder layers, mean-pooled [B, L*D].

    `size`: a published Whisper (WHISPER_DIMS); `dims`: overrides (test networks); `input`:
    "segment" (the segment's own frames) or "padded_30s" (Whisper's 30 s input); `context`:
    "clip" makes the frozen embedding pass and predict encode a clip once (`embed_clip`)."""

    feature_kind: ClassVar[str] = "whisper"
    required_features = MappingProxyType({"sample_rate_hz": SETTINGS.sample_rate_hz})
    embedding_cache_dtype: ClassVar[str] = "float16"

    def __init__(
        self,
        size: str = "tiny.en",
        embedding_layers: Sequence[int] | None = None,
        input: str = "segment",
        dims: Mapping[str, int] | None = None,
        context: str = "segment",
    ) -> None:
        super().__init__()
        if input not in INPUTS:
            raise SegserError(f"backbone.net.input={input!r}: choose one of {', '.join(INPUTS)}")
        if context not in ("segment", "clip"):
            raise SegserError(f"backbone.net.context={context!r}: choose segment or clip")
        self.size, self.input, self.context = size, input, context
        self.dims = whisper_dims(size, dims)
        self.logmel = WhisperLogMel(self.dims.n_mels)
        self.encoder = WhisperEncoder(self.dims)
        count = self.dims.n_audio_layer + 2
        self.embedding_layers = layer_range(count).checked(embedding_layers)
        self.layer_dims = (self.dims.n_audio_state,) * len(self.embedding_layers)
        self.embedding_dim = sum(self.layer_dims)
        self.input_shape = (1, SETTINGS.sample_rate_hz)  # one 1 s segment, for the summary
        # Parts after the last layer read get no gradient (DDP must not wait for them).
        last = self.embedding_layers[-1]
        self.encoder.blocks[last:].requires_grad_(False)
        self.encoder.ln_post.requires_grad_(last == count - 1)

    def extra_repr(self) -> str:  # part of the embedding cache's key
        return (
            f"size={self.size}, dims={asdict(self.dims)}, "
            f"embedding_layers={list(self.embedding_layers)}, input={self.input}"
            + (", context=clip" if self.context == "clip" else "")  # segment: keys as before
        )

    def _encode(self, samples: Tensor, lengths: Tensor | None) -> tuple[list[Tensor], Tensor]:
        """The chosen layers [B, T, D] of a batch [B, S] and each row's valid encoder frames."""
        batch, width = samples.shape
        if lengths is None:
            lengths = torch.full((batch,), width, device=samples.device)
        lengths = lengths.to(samples.device).clamp(max=width)
        mel_frames = (lengths // SETTINGS.stft_hop_samples).clamp(min=1)
        last = self.embedding_layers[-1]
        if self.input == "padded_30s":
            if width > SETTINGS.chunk_samples:
                raise SegserError(
                    f"backbone.net.input=padded_30s takes segments up to 30 s, got {width} "
                    "samples. Use input=segment or shorter segments"
                )
            valid = torch.arange(width, device=samples.device) < lengths[:, None]
            padded = F.pad(samples * valid, (0, SETTINGS.chunk_samples - width))
            outputs = self.encoder.layer_outputs(self.logmel(padded), last_layer=last)
        else:
            mel = padded_rows_log_mel(self.logmel, samples, lengths)
            outputs = self.encoder.layer_outputs(mel, mel_frames, last_layer=last)
        return [outputs[i] for i in self.embedding_layers], (mel_frames + 1) // 2

    def forward(self, segments: Tensor, lengths: Tensor | None = None) -> Tensor:
        """[B, 1, S] or [B, S] -> [B, L*D]; `lengths`: valid samples per row (zero padding
        after them, e.g. a clip's last segment), whose frames alone are pooled."""
        samples = segments.flatten(1) if segments.ndim == 3 else segments
        outputs, frames = self._encode(samples, lengths)
        total = outputs[0].shape[1]
        if bool((frames >= total).all()):
            return torch.cat([x.mean(dim=1) for x in outputs], dim=1)
        weights = (torch.arange(total, device=samples.device) < frames[:, None]).to(outputs[0])
        weights = (weights / weights.sum(dim=1, keepdim=True))[:, :, None]
        return torch.cat([(x * weights).sum(dim=1) for x in outputs], dim=1)

    def embed_clip(self, samples: Tensor, starts: Tensor, window: int) -> Tensor:
        """Clip context: encode the clip [S] once (in equal pieces of at most 30 s, where the
        positions end) and mean-pool each segment's frames start // 320 .. ceil((start +
        window) / 320), clipped to the clip -> [N, L*D] for N `starts` (in samples)."""
        starts = starts.to(samples.device)  # a CPU index beside CUDA frames fails below
        rows, lengths = clip_pieces(samples, SAMPLES_PER_FRAME, SETTINGS.chunk_samples)
        outputs, frames = self._encode(rows, lengths)
        total = int(frames.sum())
        clip_frames = [
            torch.cat([x[p, :f] for p, f in enumerate(frames.tolist())]) for x in outputs
        ]
        first = (starts // SAMPLES_PER_FRAME).clamp(0, total - 1)
        end = torch.div(
            starts + window + SAMPLES_PER_FRAME - 1, SAMPLES_PER_FRAME, rounding_mode="floor"
        )
        end = torch.maximum(end.clamp(max=total), first + 1)
        pooled = []
        for x in clip_frames:  # [T, D] each
            sums = F.pad(x.double().cumsum(dim=0), (0, 0, 1, 0))  # float64: no drift over 30 s
            pooled.append(((sums[end] - sums[first]) / (end - first)[:, None]).to(x.dtype))
        return torch.cat(pooled, dim=1)

    def load_weights(self, source: str) -> None:
        """ "packaged" (tiny.en, sha256-checked), "openai" (openai-whisper's cache), an OpenAI
        .pt, a Hugging Face file or dir, a CTranslate2 dir, or "none"; dims must be this size's."""
        if source == "none":
            return
        weights = read_encoder_weights(source, self.size)
        ours = asdict(self.dims)
        if weights.dims != ours:
            theirs = [n for n, d in WHISPER_DIMS.items() if asdict(d) == weights.dims]
            named = f" ({' or '.join(theirs)})" if theirs else ""
            raise SegserError(
                f"{weights.source}: holds a Whisper encoder with dims {weights.dims}{named}, but "
                f"backbone.net.size={self.size} builds {ours}. Set backbone.net.size to the "
                "file's size or pass this size's weights"
            )
        load_strictly(self.encoder, weights.state, weights.source, "Pass an intact Whisper file")

    def train_last_layers(self, count: int) -> None:
        """Fine-tune only the last `count` blocks the embedding reads (backbone.
        trainable_layers); the convolutions and earlier blocks keep their weights."""
        used = self.encoder.blocks[: min(self.embedding_layers[-1], len(self.encoder.blocks))]
        if not 1 <= count <= len(used):
            raise SegserError(
                f"backbone.trainable_layers={count}: give 1-{len(used)} (the embedding reads "
                f"blocks 1-{len(used)}), or null to fine-tune them all"
            )
        self.encoder.requires_grad_(False)
        used[len(used) - count :].requires_grad_(True)
        self.encoder.ln_post.requires_grad_(
            self.embedding_layers[-1] == len(self.encoder.blocks) + 1
        )

    @classmethod
    def min_samples(cls, net: Mapping[str, Any]) -> int:
        """The shortest segment giving one encoder frame: the centred STFT reflects 200
        samples at each end, so it needs 201."""
        return SETTINGS.stft_window_samples // 2 + 1

    @classmethod
    def num_layers(cls, net: Mapping[str, Any]) -> int:
        """len(layer_outputs) for the config `net`: blocks + 2."""
        dims = whisper_dims(str(net.get("size", "tiny.en")), net.get("dims"))
        return dims.n_audio_layer + 2

    @classmethod
    def check_net_config(cls, net: Mapping[str, Any]) -> None:
        """A published size (with dims that fit it) and `embedding_layers` within its outputs."""
        layer_range(cls.num_layers(net)).check_config(net.get("embedding_layers"))
