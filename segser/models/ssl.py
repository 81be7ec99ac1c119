"""wav2vec 2.0, HuBERT and WavLM on raw-waveform segments: torchaudio's own models inside.

Each backbone is a torchaudio bundle (`torchaudio.pipelines.WAVLM_BASE_PLUS`, ...; what segser
takes from it: ssl_bundles.py): its architecture (the arguments of torchaudio's builder,
`wav2vec2_model`, which HuBERT shares, or `wavlm_model`; `backbone.net.architecture` overrides
them) builds the network, its file holds the released weights (ssl_weights.py), and its rule
says whether each input is layer-normalised.

Rule: a segment [B, 1, samples] at 16 kHz goes through the convolutional feature encoder
(320-sample stride: 1 s gives 49 frames) and the transformer. Its hidden states are numbered as
SUPERB's weighted sum (s3prl) takes them: 0 = the transformer's input (after the positional
convolution, and its layer norm in the post-LN base models), i = the output of layer i, the last
one through the final layer norm in the pre-LN large models. The chosen states are mean-pooled
over frames and concatenated, so head.layer_sum weighs them as SUPERB's probes do.
`lengths` (valid samples per row: a zero-padded last segment) keep the padding out: the
waveform norm and the first convolution's group norm use the valid samples only, attention
masks the padded frames (torchaudio's rule per family), and pooling averages valid frames.
Fine-tuning keeps the feature encoder frozen (wav2vec 2.0's own fine-tuning does) and trains
the transformer with the bundle's dropout and layer drop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.models import wavlm_model

from segser.errors import SegserError
from segser.models.backbone import Backbone, LayerRange
from segser.models.ssl_bundles import ssl_bundle
from segser.models.ssl_weights import load_ssl_weights

SAMPLE_RATE_HZ = 16000


def layer_range(num_layers: int) -> LayerRange:
    """Hidden states 0..num_layers: the transformer's input and each layer's output."""
    return LayerRange.layer_outputs(
        num_layers + 1,
        f"indices 0-{num_layers} (0 = the transformer's input, i = layer i's output)",
    )


def valid_mask(lengths: Tensor, size: int) -> Tensor:
    """[B, size] True where a position is within its row's valid length."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def normalized_waveform(x: Tensor, lengths: Tensor | None) -> Tensor:
    """F.layer_norm of each row [B, samples] over its valid samples (the padding stays 0)."""
    if lengths is None:
        return F.layer_norm(x, x.shape[-1:])
    valid = valid_mask(lengths, x.shape[-1]).to(x.dtype)
    count = lengths[:, None].clamp_min(1).to(x.dtype)
    mean = (x * valid).sum(-1, keepdim=True) / count
    var = ((x - mean) * valid).square().sum(-1, keepdim=True) / count
    return (x - mean) * torch.rsqrt(var + 1e-5) * valid  # F.layer_norm's eps


def masked_group_norm(norm: nn.GroupNorm, x: Tensor, lengths: Tensor) -> Tensor:
    """`norm(x)` for x [B, C, frames] with each row's statistics over its valid frames only."""
    batch, channels, frames = x.shape
    grouped = x.reshape(batch, norm.num_groups, -1, frames)
    valid = valid_mask(lengths, frames)[:, None, None, :].to(x.dtype)
    count = (lengths.clamp_min(1) * grouped.shape[2]).to(x.dtype)[:, None, None, None]
    mean = (grouped * valid).sum((2, 3), keepdim=True) / count
    var = ((grouped - mean) * valid).square().sum((2, 3), keepdim=True) / count
    out = ((grouped - mean) * torch.rsqrt(var + norm.eps)).reshape(batch, channels, frames)
    return out * norm.weight[:, None] + norm.bias[:, None] if norm.affine else out


def conv_features(extractor: nn.Module, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Any]:
    """torchaudio's `FeatureExtractor(x, lengths)`: [B, frames, C] and valid frames per row.

    The base models' first convolution group-norms each channel over time; torchaudio takes
    the padded frames into those statistics, so with lengths it runs over the valid ones.
    A valid frame's receptive field holds valid samples only, so nothing else changes."""
    if lengths is None:
        return extractor(x, None)
    x = x[:, None]
    for block in extractor.conv_layers:
        if not isinstance(block.layer_norm, nn.GroupNorm):
            x, lengths = block(x, lengths)
            continue
        x = block.conv(x)
        lengths = ((lengths - block.kernel_size) // block.stride + 1).clamp_min(0)
        x = F.gelu(masked_group_norm(block.layer_norm, x, lengths))
    return x.transpose(1, 2), lengths


def pooled(x: Tensor, frames: Tensor | None) -> Tensor:
    """Mean over frames [B, frames, D] -> [B, D], of each row's valid frames only."""
    if frames is None:
        return x.mean(dim=1)
    valid = valid_mask(frames, x.shape[1]).to(x.dtype)[:, :, None]
    return (x * valid).sum(1) / frames.clamp_min(1).to(x.dtype)[:, None]


class SpeechTransformer(Backbone):
    """Waveform segment [B, 1, samples] -> the chosen hidden states, mean-pooled [B, L*D].

    `bundle`: a torchaudio.pipelines name (BUNDLES); `embedding_layers`: hidden-state indices
    (0 = the transformer's input, i = layer i; None: all); `architecture`: overrides of its
    builder arguments;
    `normalize_waveform`: None takes the bundle's. Normalisation is per segment (fairseq's
    rule; torchaudio's wrapper layer-norms the whole batch tensor, the same for a batch of one).
    """

    feature_kind: ClassVar[str] = "waveform"
    required_features = MappingProxyType({"sample_rate_hz": SAMPLE_RATE_HZ})
    # a base model's default: 13 states x 768 per segment (input + 12 layers): half the disk
    embedding_cache_dtype: ClassVar[str] = "float16"

    # State-dict version 2: hidden states numbered from the transformer's input (issue 26).
    # Version 1 numbered from the first layer's output, so its embedding_layers meant others.
    _version: ClassVar[int] = 2

    def __init__(
        self,
        bundle: str = "WAVLM_BASE_PLUS",
        embedding_layers: Sequence[int] | None = None,
        normalize_waveform: bool | None = None,
        architecture: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bundle_name = bundle
        found = ssl_bundle(bundle)
        self.file_name = found.file_name
        full = found.architecture_with(architecture)
        self.model = found.builder(**full)
        self.wavlm = found.builder is wavlm_model
        self.embedding_layers = layer_range(full["encoder_num_layers"]).checked(embedding_layers)
        self.layer_dims = (full["encoder_embed_dim"],) * len(self.embedding_layers)
        self.embedding_dim = sum(self.layer_dims)
        default = found.normalize_waveform
        self.normalize_waveform = default if normalize_waveform is None else normalize_waveform
        self.input_shape = (1, SAMPLE_RATE_HZ)  # one 1 s segment, for the model summary
        # wav2vec 2.0 fine-tuning freezes the convolutional encoder (feature_grad_mult 0);
        # layers past the last state used get no gradient either (DDP must not wait for them),
        # nor does a pre-LN model's final layer norm unless its last layer is used.
        transformer = self.model.encoder.transformer
        self.model.feature_extractor.requires_grad_(False)
        transformer.layers[self.embedding_layers[-1] :].requires_grad_(False)
        if not transformer.layer_norm_first and not self.final_layer_norm:
            transformer.layer_norm.requires_grad_(False)

    @property
    def final_layer_norm(self) -> bool:
        """Pre-LN (large) models norm the last layer's output (torchaudio's Transformer calls
        that layer_norm_first=False); the last state gets it when it is chosen."""
        transformer = self.model.encoder.transformer
        return not transformer.layer_norm_first and self.embedding_layers[-1] == len(
            transformer.layers
        )

    def extra_repr(self) -> str:  # part of the embedding cache's key
        return (
            f"bundle={self.bundle_name}, embedding_layers={list(self.embedding_layers)} "
            f"(0 = transformer input), final_layer_norm={self.final_layer_norm}, "
            f"normalize_waveform={self.normalize_waveform}"
        )

    def layer_outputs(self, segments: Tensor, lengths: Tensor | None = None) -> list[Tensor]:
        """Hidden states [B, frames, D] 0..last chosen (0: the transformer's input), as
        extract_features gives the layers in eval mode; in training, layer drop skips a layer
        (its output: its input). `lengths`: valid samples per row (None: every row whole)."""
        return self._hidden_states(segments, lengths)[0]

    def can_skip_parameters(self) -> bool:
        """Whether a training step can leave trainable parameters without gradients: layer
        drop skips whole layers (DDP then needs find_unused_parameters)."""
        return self.model.encoder.transformer.layer_drop > 0

    def _hidden_states(
        self, segments: Tensor, lengths: Tensor | None
    ) -> tuple[list[Tensor], Tensor | None]:
        x = segments.flatten(1) if segments.ndim == 3 else segments
        if self.normalize_waveform:
            x = normalized_waveform(x, lengths)
        with torch.no_grad():  # the frozen feature encoder: no graph to keep
            features, frames = conv_features(self.model.feature_extractor, x, lengths)
        encoder = self.model.encoder
        # zeroes the padded frames (so the positional convolution sees what an unpadded
        # segment's zero padding gives) and builds wav2vec 2.0's additive attention mask
        x, attention_mask = encoder._preprocess(features, frames)
        transformer = encoder.transformer
        padding = None
        if self.wavlm and frames is not None:  # WavLM's attention takes a key padding mask,
            # additive and in its position bias's dtype (torch deprecates a boolean one there)
            dtype = transformer.layers[0].attention.rel_attn_embed.weight.dtype
            padding = torch.zeros(frames.shape[0], x.shape[1], dtype=dtype, device=x.device)
            padding.masked_fill_(~valid_mask(frames, x.shape[1]), float("-inf"))
            attention_mask = None
        x = transformer._preprocess(x)
        outputs, position_bias = [x], None
        for index, layer in enumerate(transformer.layers[: self.embedding_layers[-1]]):
            # torchaudio's Transformer.forward rule, which extract_features leaves out
            drop = self.training and transformer.layer_drop > 0
            if not (drop and torch.rand(1).item() <= transformer.layer_drop):
                x, position_bias = layer(
                    x, attention_mask, position_bias=position_bias, key_padding_mask=padding
                )
            elif index == 0 and padding is not None:
                # WavLM masks padding only beside its relative position bias, which the first
                # layer makes: a zero bias keeps the mask when that layer is dropped
                shape = (x.shape[0], layer.attention.num_heads, x.shape[1], x.shape[1])
                position_bias = padding.new_zeros(shape)
            outputs.append(x)
        if self.final_layer_norm:
            outputs[-1] = transformer.layer_norm(outputs[-1])
        return outputs, frames

    def forward(self, segments: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Pooled states [B, L*D]; `lengths`: valid samples per row (None: every row whole)."""
        outputs, frames = self._hidden_states(segments, lengths)
        return torch.cat([pooled(outputs[i], frames) for i in self.embedding_layers], dim=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs) -> None:
        if local_metadata.get("version", self._version) < 2:  # a dict without metadata: trusted
            raise SegserError(
                f"{prefix.rstrip('.') or 'state dict'}: saved with the old SSL layer numbering "
                "(0 = the first layer; now 0 = the transformer's input), so its "
                "embedding_layers would pick other layers; retrain it"
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def load_weights(self, source: str) -> None:
        """ "bundle" (torchaudio's release via torch.hub's cache), a path, or "none"."""
        load_ssl_weights(self.model, source, self.file_name)

    @classmethod
    def min_samples(cls, net: Mapping[str, Any]) -> int:
        """The convolutional encoder's receptive field: the shortest segment giving one frame
        (400 samples, 25 ms, for every bundle)."""
        field, stride = 1, 1
        for _, kernel, step in net_architecture(net)["extractor_conv_layer_config"]:
            field += (kernel - 1) * stride
            stride *= step
        return field

    @classmethod
    def num_layers(cls, net: Mapping[str, Any]) -> int:
        """len(layer_outputs) for the config `net`: its transformer layers + 1 (the input),
        as WhisperBackbone.num_layers counts."""
        return int(net_architecture(net)["encoder_num_layers"]) + 1

    @classmethod
    def check_net_config(cls, net: Mapping[str, Any]) -> None:
        """A known bundle, architecture keys of its builder, `embedding_layers` in range; the
        old key `params` is refused in a config (checkpoints: models.checkpoint renames it)."""
        if "params" in net:
            raise SegserError(
                "backbone.net.params is now backbone.net.architecture (the arguments of "
                "torchaudio.models.wav2vec2_model / wavlm_model): rename the key"
            )
        num_layers = net_architecture(net)["encoder_num_layers"]
        layer_range(num_layers).check_config(net.get("embedding_layers"))


def net_architecture(net: Mapping[str, Any]) -> dict[str, Any]:
    """The builder arguments a `backbone.net` config builds: its bundle's, with `architecture`."""
    bundle = ssl_bundle(str(net.get("bundle", "WAVLM_BASE_PLUS")))
    return bundle.architecture_with(net.get("architecture"))
