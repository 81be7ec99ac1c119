"""wav2vec 2.0, HuBERT and WavLM on raw-waveform segments: torchaudio's own models inside.

Each backbone is a torchaudio bundle (`torchaudio.pipelines.WAVLM_BASE_PLUS`, ...): its
`_params` build the network with torchaudio's builder (`wav2vec2_model`, which HuBERT shares,
or `wavlm_model`), its `_path` names the released weights (ssl_weights.py), and its
`_normalize_waveform` says whether the model expects each input layer-normalised.

Rule: a segment [B, 1, samples] at 16 kHz goes through the convolutional feature encoder
(320-sample stride: 1 s gives 49 frames) and the transformer; the outputs of the chosen
transformer layers, indexed as torchaudio's `extract_features` returns them (0 = the first
layer), are mean-pooled over frames and concatenated, so head.layer_sum weighs them as
SUPERB's probes do. Fine-tuning keeps the feature encoder frozen (wav2vec 2.0's own
fine-tuning does) and trains the transformer with the bundle's dropout and layer drop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor
from torchaudio.models import wav2vec2_model, wavlm_model

from segser.errors import SegserError
from segser.models.backbone import Backbone
from segser.models.ssl_weights import load_ssl_weights

# The bundles segser builds (a checkpoint may name only these): self-supervised, not ASR-tuned.
BUNDLES = (
    "WAV2VEC2_BASE", "WAV2VEC2_LARGE", "WAV2VEC2_LARGE_LV60K", "WAV2VEC2_XLSR53",
    "HUBERT_BASE", "HUBERT_LARGE", "HUBERT_XLARGE",
    "WAVLM_BASE", "WAVLM_BASE_PLUS", "WAVLM_LARGE",
)  # fmt: skip
SAMPLE_RATE_HZ = 16000


def find_bundle(name: str) -> Any:
    """The torchaudio bundle of that name, or one line listing the known ones."""
    if name not in BUNDLES:
        raise SegserError(
            f"backbone.net.bundle={name!r} is not a self-supervised torchaudio bundle segser "
            f"builds; choose one of {', '.join(BUNDLES)}"
        )
    return getattr(torchaudio.pipelines, name)


def bundle_params(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The bundle's `_params` with `overrides` (smaller test networks); unknown keys refused."""
    params = dict(find_bundle(name)._params)
    unknown = sorted(set(overrides or {}) - set(params))
    if unknown:
        raise SegserError(
            f"backbone.net.params has keys {unknown} that {name}'s builder does not take; "
            f"allowed: {', '.join(sorted(params))}"
        )
    return {**params, **dict(overrides or {})}


def build_network(name: str, params: Mapping[str, Any]) -> torchaudio.models.Wav2Vec2Model:
    """torchaudio's model for the bundle's family, as `bundle.get_model()` builds it."""
    builder = wavlm_model if find_bundle(name)._model_type == "WavLM" else wav2vec2_model
    return builder(**params)


def checked_layers(embedding_layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """Sorted unique layer indices (None: every layer), or one line naming the allowed range."""
    if embedding_layers is None:
        return tuple(range(num_layers))
    layers = tuple(embedding_layers)
    if not layers or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_layers for i in layers
    ):
        raise SegserError(
            f"backbone.net.embedding_layers={list(layers)}: give transformer layer indices 0-"
            f"{num_layers - 1} (0 = the first layer), or null for every layer"
        )
    return tuple(sorted(set(layers)))


class SpeechTransformer(Backbone):
    """Waveform segment [B, 1, samples] -> the chosen transformer layers, mean-pooled [B, L*D].

    `bundle`: a torchaudio.pipelines name (BUNDLES); `params`: overrides of its `_params`;
    `normalize_waveform`: None takes the bundle's. Normalisation is per segment (fairseq's
    rule; torchaudio's wrapper layer-norms the whole batch tensor, the same for a batch of one).
    """

    feature_kind: ClassVar[str] = "waveform"
    required_features = MappingProxyType({"sample_rate_hz": SAMPLE_RATE_HZ})
    embedding_cache_dtype: ClassVar[str] = "float16"  # 13 x 768 per segment: half the disk

    def __init__(
        self,
        bundle: str = "WAVLM_BASE_PLUS",
        embedding_layers: Sequence[int] | None = None,
        normalize_waveform: bool | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bundle_name = bundle
        self.file_name = find_bundle(bundle)._path
        full = bundle_params(bundle, params)
        self.model = build_network(bundle, full)
        self.embedding_layers = checked_layers(embedding_layers, full["encoder_num_layers"])
        self.layer_dims = (full["encoder_embed_dim"],) * len(self.embedding_layers)
        self.embedding_dim = sum(self.layer_dims)
        default = find_bundle(bundle)._normalize_waveform
        self.normalize_waveform = default if normalize_waveform is None else normalize_waveform
        self.input_shape = (1, SAMPLE_RATE_HZ)  # one 1 s segment, for the model summary
        # wav2vec 2.0 fine-tuning freezes the convolutional encoder (feature_grad_mult 0);
        # layers past the last one used get no gradient either (DDP must not wait for them).
        self.model.feature_extractor.requires_grad_(False)
        self.model.encoder.transformer.layers[self.embedding_layers[-1] + 1 :].requires_grad_(False)

    def extra_repr(self) -> str:  # part of the embedding cache's key
        return (
            f"bundle={self.bundle_name}, embedding_layers={list(self.embedding_layers)}, "
            f"normalize_waveform={self.normalize_waveform}"
        )

    def layer_outputs(self, segments: Tensor) -> list[Tensor]:
        """Outputs [B, frames, D] of transformer layers 0..last chosen, as extract_features
        gives them in eval mode; in training, layer drop skips a layer (its output: its input)."""
        x = segments.flatten(1) if segments.ndim == 3 else segments
        if self.normalize_waveform:
            x = F.layer_norm(x, x.shape[-1:])
        with torch.no_grad():  # the frozen feature encoder: no graph to keep
            features, _ = self.model.feature_extractor(x, None)
        encoder = self.model.encoder
        x, _ = encoder._preprocess(features, None)
        transformer = encoder.transformer
        x = transformer._preprocess(x)
        outputs, position_bias = [], None
        for layer in transformer.layers[: self.embedding_layers[-1] + 1]:
            # torchaudio's Transformer.forward rule, which extract_features leaves out
            drop = self.training and transformer.layer_drop > 0
            if not (drop and torch.rand(1).item() <= transformer.layer_drop):
                x, position_bias = layer(x, None, position_bias=position_bias)
            outputs.append(x)
        return outputs

    def forward(self, segments: Tensor, lengths: Tensor | None = None) -> Tensor:
        outputs = self.layer_outputs(segments)
        return torch.cat([outputs[i].mean(dim=1) for i in self.embedding_layers], dim=1)

    def load_weights(self, source: str) -> None:
        """ "bundle" (torchaudio's release via torch.hub's cache), a path, or "none"."""
        load_ssl_weights(self.model, source, self.file_name)

    @classmethod
    def min_samples(cls, net: Mapping[str, Any]) -> int:
        """The convolutional encoder's receptive field: the shortest segment giving one frame
        (400 samples, 25 ms, for every bundle)."""
        params = bundle_params(str(net.get("bundle", "WAVLM_BASE_PLUS")), net.get("params"))
        field, stride = 1, 1
        for _, kernel, step in params["extractor_conv_layer_config"]:
            field += (kernel - 1) * stride
            stride *= step
        return field

    @classmethod
    def num_layers(cls, net: Mapping[str, Any]) -> int:
        """Transformer layers the config `net` builds (config_checks' range check)."""
        params = bundle_params(str(net.get("bundle", "WAVLM_BASE_PLUS")), net.get("params"))
        return int(params["encoder_num_layers"])
