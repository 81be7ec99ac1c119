"""SpeechTransformer: torchaudio's own wav2vec 2.0 / HuBERT / WavLM, layer for layer."""

from __future__ import annotations

import inspect
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchaudio

from segser.errors import SegserError
from segser.models.checkpoint import current_model_config
from segser.models.ssl import SpeechTransformer
from segser.models.ssl_bundles import BUNDLES, find_bundle, ssl_bundle
from segser.models.ssl_weights import bundle_url
from tests.ssl_tiny import SSL_BACKBONES, tiny_architecture


def reference(bundle: str, params: dict) -> torch.nn.Module:
    """torchaudio's model as its bundle's get_model() builds it (random weights)."""
    kind = find_bundle(bundle)._model_type
    builder = torchaudio.models.wavlm_model if kind == "WavLM" else torchaudio.models.wav2vec2_model
    return builder(**{**find_bundle(bundle)._params, **params}).eval()


def s3prl_states(model: torch.nn.Module, waveform: torch.Tensor) -> list[torch.Tensor]:
    """SUPERB's hidden states as s3prl's upstreams hook them: each transformer layer's input,
    then the encoder's output (the pre-LN models' final layer norm included)."""
    states = []
    hooks = [
        layer.register_forward_pre_hook(lambda module, args: states.append(args[0]))
        for layer in model.encoder.transformer.layers
    ]
    try:
        output, _ = model(waveform)
    finally:
        for hook in hooks:
            hook.remove()
    return [*states, output]


@pytest.mark.parametrize("bundle", sorted(set(SSL_BACKBONES.values())))
def test_states_equal_torchaudio_s_as_s3prl_takes_them(bundle: str) -> None:
    torch.manual_seed(0)
    params = tiny_architecture(bundle, layers=3)
    ours = SpeechTransformer(bundle, architecture=params).eval()
    theirs = reference(bundle, params)
    theirs.load_state_dict(ours.model.state_dict())
    segments = 0.1 * torch.randn(3, 1, 16000) + 0.05  # an offset, so normalisation matters
    with torch.no_grad():
        ours_states = ours.layer_outputs(segments)
        pooled = ours(segments)
        for row in range(3):  # torchaudio's wrapper layer-norms the whole input: one at a time
            x = segments[row]
            if find_bundle(bundle)._normalize_waveform:
                x = F.layer_norm(x, x.shape)
            expected = s3prl_states(theirs, x)
            layers, _ = theirs.extract_features(x)
            assert len(expected) == len(ours_states) == 4  # the input and 3 layers
            # the layers' outputs are extract_features', the last one normed in pre-LN models
            torch.testing.assert_close(expected[1:3], layers[:2])
            pre_ln = find_bundle(bundle)._params["encoder_layer_norm_first"]
            assert torch.allclose(expected[3], layers[2]) != pre_ln
            for index, (got, want) in enumerate(zip(ours_states, expected, strict=True)):
                torch.testing.assert_close(got[row : row + 1], want, atol=1e-5, rtol=1e-5)
                assert got.shape[1] == 49  # 1 s -> 49 frames
                torch.testing.assert_close(
                    pooled[row, index * 32 : (index + 1) * 32], want[0].mean(0), atol=1e-5, rtol=0
                )
    assert ours.normalize_waveform == find_bundle(bundle)._normalize_waveform


@pytest.mark.parametrize("bundle", BUNDLES)
def test_full_size_layout_is_torchaudios(bundle: str) -> None:
    """Every bundle at its real size (on the meta device: shapes only, no memory)."""
    with torch.device("meta"):
        ours = SpeechTransformer(bundle)
        theirs = reference(bundle, {})
    assert {k: v.shape for k, v in ours.model.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    params = find_bundle(bundle)._params
    # SUPERB's states: the transformer's input and every layer (a base model: 13 x 768)
    assert ours.embedding_layers == tuple(range(params["encoder_num_layers"] + 1))
    assert ours.embedding_dim == (params["encoder_num_layers"] + 1) * params["encoder_embed_dim"]
    # the config check's count: every layer output, as Whisper's num_layers counts them
    assert SpeechTransformer.num_layers({"bundle": bundle}) == len(ours.embedding_layers)


def test_chosen_layers_are_pooled_in_order() -> None:
    torch.manual_seed(1)
    model = SpeechTransformer(
        "HUBERT_BASE", [2, 0], architecture=tiny_architecture("HUBERT_BASE", 3)
    ).eval()
    segments = torch.randn(2, 1, 8000)
    with torch.no_grad():
        layers = model.layer_outputs(segments)
        expected = torch.cat([layers[0].mean(1), layers[2].mean(1)], dim=1)
        torch.testing.assert_close(model(segments), expected)
    assert model.layer_dims == (32, 32)
    # the embedding cache's key (repr) names the numbering: a key of the old one never matches
    assert "embedding_layers=[0, 2] (0 = transformer input), final_layer_norm=False" in repr(model)
    large = SpeechTransformer("HUBERT_LARGE", architecture=tiny_architecture("HUBERT_LARGE", 3))
    assert "embedding_layers=[0, 1, 2, 3] (0 = transformer input), final_layer_norm=True" in repr(
        large
    )


def test_state_dict_in_torchaudio_layout_loads_from_a_path(tmp_path: Path) -> None:
    torch.manual_seed(2)
    params = tiny_architecture("WAVLM_BASE_PLUS")
    saved = reference("WAVLM_BASE_PLUS", params)
    path = tmp_path / "wavlm_tiny.pth"
    torch.save(saved.state_dict(), path)
    model = SpeechTransformer("WAVLM_BASE_PLUS", [1, 2], architecture=params)  # the layers' outputs
    before = model(torch.zeros(1, 1, 16000))
    model.load_weights(str(path))
    model.eval()
    segments = torch.randn(2, 1, 16000)
    with torch.no_grad():
        want = torch.cat([x.mean(1) for x in saved.extract_features(segments[:, 0])[0]], dim=1)
        torch.testing.assert_close(model(segments), want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, model(torch.zeros(1, 1, 16000)))
    other = SpeechTransformer(
        "WAVLM_BASE_PLUS", architecture=tiny_architecture("WAVLM_BASE_PLUS", 3)
    )
    with pytest.raises(SegserError, match=r"wavlm_tiny.pth: does not fit .*missing keys"):
        other.load_weights(str(path))


def test_a_state_dict_of_the_old_layer_numbering_is_refused() -> None:
    """segser's state dicts before issue 26 numbered the layers from the first one's output."""
    params = tiny_architecture("HUBERT_BASE")
    saved = SpeechTransformer("HUBERT_BASE", [0, 1], architecture=params).state_dict()
    assert saved._metadata[""]["version"] == 2
    SpeechTransformer("HUBERT_BASE", [0, 1], architecture=params).load_state_dict(saved)
    saved._metadata[""]["version"] = 1  # what the earlier SpeechTransformer saved
    with pytest.raises(SegserError, match=r"^state dict: saved with the old SSL layer numbering"):
        SpeechTransformer("HUBERT_BASE", [0, 1], architecture=params).load_state_dict(saved)


def test_bundle_weights_come_from_the_hub_cache(tmp_path: Path, monkeypatch) -> None:
    params = tiny_architecture("WAV2VEC2_BASE")
    saved = reference("WAV2VEC2_BASE", params)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(saved.state_dict(), checkpoints / "wav2vec2_fairseq_base_ls960.pth")

    def no_network(*args, **kwargs):
        raise AssertionError("the cached file must be used without a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    model = SpeechTransformer("WAV2VEC2_BASE", architecture=params)
    model.load_weights("bundle")
    for key, value in saved.state_dict().items():
        assert torch.equal(model.model.state_dict()[key], value)


def test_missing_bundle_file_offline_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    asked = []

    def offline(url, *args, **kwargs):  # what urllib raises without a network
        asked.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    model = SpeechTransformer("WAVLM_BASE_PLUS", architecture=tiny_architecture("WAVLM_BASE_PLUS"))
    with pytest.raises(SegserError) as error:
        model.load_weights("bundle")
    message = str(error.value)
    assert "\n" not in message
    url = bundle_url("wavlm_base_plus.pth")
    assert (
        asked == [url]
        and url == "https://download.pytorch.org/torchaudio/models/wavlm_base_plus.pth"
    )
    assert message.startswith("wavlm_base_plus.pth: not in ")
    assert str(tmp_path / "hub" / "checkpoints") in message and url in message


def test_fine_tuning_freezes_the_conv_encoder_and_drops_layers() -> None:
    torch.manual_seed(3)
    params = tiny_architecture("WAV2VEC2_BASE", 3) | {"encoder_layer_drop": 1.0}
    model = SpeechTransformer("WAV2VEC2_BASE", [0, 1], architecture=params).train()
    segments = torch.randn(2, 1, 16000)
    outputs = model.layer_outputs(segments)
    # layer drop 1.0 in training skips every layer: each output is the transformer's input
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0])
    model.eval()
    model.model.encoder.transformer.layer_drop = 0.05  # the bundle's value
    model.train()
    model(segments).square().sum().backward()
    conv = list(model.model.feature_extractor.parameters())
    assert conv and all(not p.requires_grad and p.grad is None for p in conv)
    used = model.model.encoder.transformer.layers[0].parameters()
    assert all(p.grad is not None for p in used)
    unused = list(model.model.encoder.transformer.layers[2].parameters())
    assert all(not p.requires_grad for p in unused)  # past the last chosen layer


@pytest.mark.parametrize("layers", [None, [0, 1], [2]])
@pytest.mark.parametrize("bundle", ["HUBERT_BASE", "WAVLM_LARGE"])
def test_every_trainable_parameter_gets_a_gradient_without_layer_drop(bundle, layers) -> None:
    """DDP waits for every trainable parameter: those no chosen state uses are frozen (layers
    past the last one, a pre-LN model's final layer norm unless its last layer is chosen)."""
    params = tiny_architecture(bundle, 3) | {"encoder_layer_drop": 0.0}
    model = SpeechTransformer(bundle, layers, architecture=params).train()
    model(torch.randn(2, 1, 16000), torch.tensor([9000, 16000])).square().sum().backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.grad is not None for p in trainable.values())
    final_norm = "model.encoder.transformer.layer_norm.weight" in trainable
    assert final_norm == (bundle == "HUBERT_BASE" or layers is None)  # post-LN: always used


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bundle": "WAV2VEC2_ASR_BASE_960H"}, r"bundle='WAV2VEC2_ASR_BASE_960H' is not"),
        ({"embedding_layers": [3]}, r"embedding_layers=\[3\]: give indices 0-2 \(0 = the trans"),
        ({"embedding_layers": [-1]}, r"embedding_layers=\[-1\]: give indices 0-2"),
        ({"embedding_layers": []}, r"embedding_layers=\[\]"),
    ],
)
def test_bad_settings_are_one_line(kwargs: dict, match: str) -> None:
    bundle = kwargs.pop("bundle", "HUBERT_BASE")
    params = tiny_architecture("HUBERT_BASE") if bundle == "HUBERT_BASE" else None
    with pytest.raises(SegserError, match=match):
        SpeechTransformer(bundle, architecture=params, **kwargs)


def test_unknown_architecture_keys_are_one_line() -> None:
    with pytest.raises(SegserError, match=r"architecture has keys \['num_layers'\] that torch"):
        SpeechTransformer("HUBERT_BASE", architecture={"num_layers": 2})
    with pytest.raises(SegserError, match=r"has keys \['encoder_num_buckets'\] that torchaudio"):
        SpeechTransformer("HUBERT_BASE", architecture={"encoder_num_buckets": 8})  # WavLM's


# WavLM Base+ as published (Chen et al., 2022; fairseq's wavlm_base_plus config): 7 conv layers
# of 512 channels, 12 post-LN layers x 768, 12 heads, 3072 FFN, 320 relative-position buckets.
WAVLM_BASE_PLUS = {
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_projection_dropout": 0.1,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 12,
    "encoder_num_heads": 12,
    "encoder_max_distance": 800,
    "encoder_num_buckets": 320,
    "encoder_attention_dropout": 0.1,
    "encoder_ff_interm_features": 3072,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.1,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.05,
    "aux_num_out": None,
}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_the_bundle_reading_is_the_builders_public_arguments(bundle: str) -> None:
    """ssl_bundle reads torchaudio's private attributes: their keys must stay the public
    arguments of the family's builder, and WavLM Base+ must read as published."""
    found = ssl_bundle(bundle)
    builder = (
        torchaudio.models.wavlm_model if "WAVLM" in bundle else torchaudio.models.wav2vec2_model
    )
    assert found.builder is builder
    assert set(found.architecture) == set(inspect.signature(builder).parameters)
    if bundle == "WAVLM_BASE_PLUS":
        assert dict(found.architecture) == WAVLM_BASE_PLUS
        assert (found.file_name, found.normalize_waveform) == ("wavlm_base_plus.pth", False)
    if bundle == "WAVLM_LARGE":  # the pre-LN large models expect layer-normalised input
        assert (found.file_name, found.normalize_waveform) == ("wavlm_large.pth", True)


def test_a_checkpoint_s_old_params_key_builds_the_same_network() -> None:
    """Checkpoints before issue 27 store the architecture under `params`; a config may not."""
    tiny = tiny_architecture("WAVLM_BASE_PLUS", 3)
    stored = {"backbone": {"net": {"bundle": "WAVLM_BASE_PLUS", "params": tiny}}}
    old_net = current_model_config(stored)["backbone"]["net"]
    old = SpeechTransformer(**old_net)
    new = SpeechTransformer("WAVLM_BASE_PLUS", architecture=tiny)
    assert {k: v.shape for k, v in old.state_dict().items()} == {
        k: v.shape for k, v in new.state_dict().items()
    }
    assert SpeechTransformer.num_layers(old_net) == 4
    with pytest.raises(SegserError, match=r"^backbone.net.params is now backbone.net.architec"):
        SpeechTransformer.check_net_config({"bundle": "WAVLM_BASE_PLUS", "params": tiny})
