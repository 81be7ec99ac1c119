"""torchaudio's self-supervised bundles that segser builds, and what it takes from each one.

A `torchaudio.pipelines.Wav2Vec2Bundle` keeps what segser needs in private attributes: `_params`
(the builder arguments of the released network), `_model_type` (WavLM or the wav2vec 2.0
family, which HuBERT shares), `_path` (the released file) and `_normalize_waveform`. Its public
`get_model()` would also download the weights, so `ssl_bundle` is the one place they are read;
tests/models/test_ssl.py pins that reading (the builders' signatures, WavLM Base+'s layout).
A config speaks the builders' public argument names (`backbone.net.architecture`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torchaudio
from torchaudio.models import Wav2Vec2Model, wav2vec2_model, wavlm_model

from segser.errors import SegserError

# The bundles segser builds (a checkpoint may name only these): self-supervised, not ASR-tuned.
BUNDLES = (
    "WAV2VEC2_BASE", "WAV2VEC2_LARGE", "WAV2VEC2_LARGE_LV60K", "WAV2VEC2_XLSR53",
    "HUBERT_BASE", "HUBERT_LARGE", "HUBERT_XLARGE",
    "WAVLM_BASE", "WAVLM_BASE_PLUS", "WAVLM_LARGE",
)  # fmt: skip


def find_bundle(name: str) -> Any:
    """The torchaudio bundle of that name, or one line listing the known ones."""
    if name not in BUNDLES:
        raise SegserError(
            f"backbone.net.bundle={name!r} is not a self-supervised torchaudio bundle segser "
            f"builds; choose one of {', '.join(BUNDLES)}"
        )
    return getattr(torchaudio.pipelines, name)


@dataclass(frozen=True)
class SSLBundle:
    """One bundle as segser builds it: `builder(**architecture)` is its released network."""

    builder: Callable[..., Wav2Vec2Model]  # torchaudio.models.wavlm_model or wav2vec2_model
    architecture: Mapping[str, Any]  # the builder's arguments
    file_name: str  # the released weights (ssl_weights.bundle_state_dict)
    normalize_waveform: bool  # whether the network expects each input layer-normalised

    def architecture_with(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """The architecture with `overrides` (smaller test networks): arguments of the builder
        only, or one line naming them."""
        allowed = inspect.signature(self.builder).parameters
        unknown = sorted(set(overrides or {}) - set(allowed))
        if unknown:
            raise SegserError(
                f"backbone.net.architecture has keys {unknown} that torchaudio.models."
                f"{self.builder.__name__} does not take; allowed: {', '.join(allowed)}"
            )
        return {**self.architecture, **dict(overrides or {})}


def ssl_bundle(name: str) -> SSLBundle:
    """The bundle `name` (BUNDLES), read from torchaudio's private attributes here only."""
    found = find_bundle(name)
    return SSLBundle(
        builder=wavlm_model if found._model_type == "WavLM" else wav2vec2_model,
        architecture=MappingProxyType(dict(found._params)),
        file_name=found._path,
        normalize_waveform=bool(found._normalize_waveform),
    )
