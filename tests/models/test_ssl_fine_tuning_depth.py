"""SpeechTransformer: which transformer layers fine-tune, and whose waveform rule it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segser.models.factory import build_classifier
from segser.models.ssl import SpeechTransformer
from segser.setup.components import model_config
from tests.hydra_app import composed
from tests.ssl_tiny import tiny_architecture, tiny_override

NUM_LAYERS = 4


def _trains(model: SpeechTransformer) -> list[bool]:
    """Per transformer layer: do all its parameters take gradients (and none do not)?"""
    flags = []
    for layer in model.model.encoder.transformer.layers:
        grads = {p.requires_grad for p in layer.parameters()}
        assert len(grads) == 1, "a layer is either trained or frozen as a whole"
        flags.append(grads.pop())
    return flags


@pytest.mark.parametrize("chosen", [[0], [1], [0, 2], [2, 4], [3]])
@pytest.mark.parametrize("bundle", ["HUBERT_BASE", "WAV2VEC2_LARGE_LV60K"])  # post- and pre-LN
def test_exactly_the_layers_up_to_the_last_chosen_one_train(bundle: str, chosen: list[int]):
    """Hidden state i is layer i's output (0: the transformer's input), so layers 1..i (list
    indices 0..i-1) make the last chosen state and train; the layers past it are frozen."""
    torch.manual_seed(0)
    params = tiny_architecture(bundle, NUM_LAYERS) | {"encoder_layer_drop": 0.0}
    model = SpeechTransformer(bundle, chosen, architecture=params).train()
    last = max(chosen)
    assert _trains(model) == [i < last for i in range(NUM_LAYERS)]
    assert len(model.layer_outputs(torch.randn(1, 1, 4000))) == last + 1
    model(torch.randn(2, 1, 8000)).square().sum().backward()
    for index, layer in enumerate(model.model.encoder.transformer.layers):
        got = [p.grad is not None for p in layer.parameters()]
        # every layer up to the last chosen state is reached by the gradient, none past it
        assert all(got) if index < last else not any(got), index
    # and in the whole network: a parameter trains exactly when the embedding uses it (the
    # large models' final layer norm only with their last state; nothing trainable is unused)
    for name, parameter in model.model.named_parameters():
        used = parameter.grad is not None
        assert parameter.requires_grad == used, name
        assert not name.startswith("feature_extractor") or not used, name
    norm = model.model.encoder.transformer.layer_norm.weight
    if bundle == "WAV2VEC2_LARGE_LV60K":
        assert norm.requires_grad == (last == NUM_LAYERS)


def test_the_optimizer_gets_the_trained_layers_and_no_frozen_one() -> None:
    """As `python -m segser.train backbone=hubert_base backbone.freeze=false` builds it."""
    cfg = composed("train", ["backbone=hubert_base", "backbone.weights=none",
                             tiny_override("HUBERT_BASE", NUM_LAYERS), "backbone.freeze=false",
                             "backbone.net.embedding_layers=[1]"])  # fmt: skip
    model = build_classifier(model_config(cfg))
    optimized = {id(p) for g in model.configure_optimizers().param_groups for p in g["params"]}
    layers = model.backbone.model.encoder.transformer.layers
    for index, layer in enumerate(layers):
        inside = [id(p) in optimized for p in layer.parameters()]
        assert all(inside) if index < 1 else not any(inside), index  # state 1: layer 1
    conv = model.backbone.model.feature_extractor.parameters()
    assert not any(id(p) in optimized for p in conv)


@pytest.mark.parametrize(
    ("backbone", "bundle", "explicit"),
    [
        ("wav2vec2_large", "WAV2VEC2_LARGE_LV60K", False),  # the bundle's rule: normalise
        ("hubert_large", "HUBERT_LARGE", False),
        ("hubert_base", "HUBERT_BASE", True),  # the bundle's rule: raw samples
        ("wavlm_base_plus", "WAVLM_BASE_PLUS", True),
    ],
)
def test_an_explicit_normalize_waveform_wins_over_the_bundles_rule(
    backbone: str, bundle: str, explicit: bool
) -> None:
    overrides = [f"backbone={backbone}", "backbone.weights=none", tiny_override(bundle, 2)]
    default = build_classifier(model_config(composed("train", overrides))).backbone
    assert default.normalize_waveform is (not explicit)  # the bundle's own rule, when null
    cfg = composed("train", [*overrides, f"backbone.net.normalize_waveform={explicit}"])
    model = build_classifier(model_config(cfg)).backbone.eval()
    assert model.normalize_waveform is explicit
    assert f"normalize_waveform={explicit}" in model.extra_repr()  # the embedding cache's key
    # and the forward pass follows it: an offset waveform gives what its own rule gives
    model.load_state_dict(default.state_dict())
    segments = 0.1 * torch.randn(2, 1, 8000) + 0.3
    inputs = F.layer_norm(segments, segments.shape[-1:]) if explicit else segments
    default.eval().normalize_waveform = False
    with torch.no_grad():
        torch.testing.assert_close(model(segments), default(inputs))


def test_the_frozen_embedding_cache_keeps_the_waveform_rules_apart() -> None:
    """Embeddings of normalised and raw waveforms never share a cache entry (same weights)."""
    from segser.data.cache.embeddings import embedding_key

    torch.manual_seed(0)
    params = tiny_architecture("HUBERT_BASE", 2)
    raw = SpeechTransformer("HUBERT_BASE", architecture=params, normalize_waveform=False)
    normalised = SpeechTransformer("HUBERT_BASE", architecture=params, normalize_waveform=True)
    normalised.load_state_dict(raw.state_dict())
    default = SpeechTransformer("HUBERT_BASE", architecture=params)  # the bundle's rule: raw
    default.load_state_dict(raw.state_dict())
    keys = {name: embedding_key("segments", model) for name, model in
            (("raw", raw), ("normalised", normalised), ("default", default))}  # fmt: skip
    assert keys["raw"] != keys["normalised"] and keys["raw"] == keys["default"]
