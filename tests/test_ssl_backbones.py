"""Every SSL backbone end to end on the demo corpus (tiny networks of its layout, random weights):
train, test, metrics.json, evaluate and predict from its checkpoint; config contradictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segser.data.cache.embeddings import build_or_open_embeddings
from segser.data.cache.waveforms import build_or_open_waveforms
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.settings import WaveformSettings
from segser.errors import SegserError
from segser.models.checkpoint import check_targets, load_trained, read_checkpoint
from segser.models.heads import ClassificationHead
from segser.models.ssl import SpeechTransformer
from segser.setup.config_checks import check_config
from segser.train import train
from tests.hydra_app import composed
from tests.run_checks import (
    evaluate_matches_the_run,
    expected_probabilities,
    predict_one_clip,
)
from tests.segser_cli import run_segser
from tests.ssl_tiny import SSL_BACKBONES, tiny_architecture, tiny_override


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One demo corpus and waveform cache for every test here (the backbones' entries differ)."""
    return tmp_path_factory.mktemp("ssl_data")


def ssl_config(tmp_path: Path, data_dir: Path, backbone: str, *extra: str):
    return composed(
        "train",
        [
            "experiment=demo",
            f"backbone={backbone}",
            "backbone.weights=none",
            tiny_override(SSL_BACKBONES[backbone]),
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={tmp_path / 'outputs'}",
            "dataset.num_clips=48",
            "trainer.max_epochs=1",
            "callbacks.progress_bar=null",
            *extra,
        ],
    )


@pytest.mark.parametrize("backbone", list(SSL_BACKBONES))
def test_train_evaluate_predict_from_the_checkpoint(
    backbone: str, tmp_path: Path, data_dir: Path
) -> None:
    payload = train(ssl_config(tmp_path, data_dir, backbone), tmp_path / "run")
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["config"]["backbone"]["name"] == backbone
    assert written["config"]["backbone"]["net"]["bundle"] == SSL_BACKBONES[backbone]
    assert written["config"]["features"] == {"kind": "waveform", "sample_rate_hz": 16000}
    assert set(written["metrics"]) == {"SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA"}
    checkpoint = Path(payload["best_checkpoint"])
    stored = read_checkpoint(checkpoint)["hyper_parameters"]["model_config"]
    check_targets(stored, "checkpoint")  # the allow-list takes segser.models.ssl's class
    trained = load_trained(checkpoint)
    assert isinstance(trained.model.backbone, SpeechTransformer)
    assert trained.features == WaveformSettings()
    # a checkpoint of the layer numbering before issue 26 (0 = the first layer) is refused
    old = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert old["state_dict"]._metadata["backbone"]["version"] == 2
    old["state_dict"]._metadata["backbone"]["version"] = 1
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(SegserError, match=r"\(SegserError: backbone: saved with the old SSL layer"):
        load_trained(tmp_path / "old.ckpt")
    # a checkpoint from before issue 27 keeps the architecture under `params`: it loads
    renamed = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net = renamed["hyper_parameters"]["model_config"]["backbone"]["net"]
    net["params"] = net.pop("architecture")
    torch.save(renamed, tmp_path / "params.ckpt")
    assert load_trained(tmp_path / "params.ckpt").model.backbone.embedding_dim == (
        trained.model.backbone.embedding_dim
    )

    evaluate_matches_the_run(checkpoint, data_dir, tmp_path / "evaluate", payload)
    clip, probabilities = predict_one_clip(checkpoint, data_dir, tmp_path / "predict")
    expected = expected_probabilities(trained.model, clip)
    np.testing.assert_allclose(probabilities, expected, atol=2e-6)


def test_fine_tuning_trains_the_transformer_on_waveform_batches(
    tmp_path: Path, data_dir: Path
) -> None:
    cfg = ssl_config(tmp_path, data_dir, "hubert_base", "backbone.freeze=false", "backbone.lr=1e-3")
    payload = train(cfg, tmp_path / "run")
    state = read_checkpoint(payload["best_checkpoint"])["state_dict"]
    torch.manual_seed(0)
    untouched = SpeechTransformer("HUBERT_BASE", architecture=tiny_architecture("HUBERT_BASE"))
    conv = "backbone.model.feature_extractor.conv_layers.0.conv.weight"
    attention = "backbone.model.encoder.transformer.layers.0.attention.k_proj.weight"
    # the demo seeds the run with 0: the backbone starts as this one, so its conv stays, and the
    # transformer has moved
    assert torch.equal(state[conv], untouched.state_dict()[conv.removeprefix("backbone.")])
    assert not torch.equal(
        state[attention], untouched.state_dict()[attention.removeprefix("backbone.")]
    )


def test_the_cli_runs_one_backbone_end_to_end(tmp_path: Path) -> None:
    result = run_segser(
        "segser.train",
        "experiment=demo",
        "backbone=wavlm_base_plus",
        "backbone.weights=none",
        tiny_override("WAVLM_BASE_PLUS"),
        "dataset.num_clips=48",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (metrics,) = (tmp_path / "outputs").glob("runs/*/*/metrics.json")
    assert json.loads(metrics.read_text())["config"]["features"]["kind"] == "waveform"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["backbone=wavlm_base_plus", "features=vggish"], "features.kind=logmel contradicts "
         "backbone=wavlm_base_plus, which reads raw waveform segments"),
        (["backbone=yamnet", "features=waveform"], "features.kind=waveform contradicts "
         "backbone=yamnet, which reads log-mel patches"),
        (["backbone=hubert_base", "features.sample_rate_hz=8000"], "features.sample_rate_hz=8000 "
         "contradicts backbone=hubert_base"),
        (["backbone=wav2vec2_large", "backbone.net.embedding_layers=[25]"],
         "backbone.net.embedding_layers=[25] is out of range: allowed null (all of them) or a "
         "non-empty list of indices 0-24 (0 = the first layer's input, i = layer i's output)"),
        (["backbone=wavlm_base_plus", "segmentation.window_seconds=0.02"],
         "segmentation.window_seconds=0.02 is out of range: allowed >= 0.025 s, the "
         "convolutional encoder's receptive field"),
    ],
)  # fmt: skip
def test_contradicting_overrides_are_one_line(overrides: list[str], words: str) -> None:
    with pytest.raises(SegserError) as refused:
        check_config(composed("train", ["experiment=demo", *overrides]))
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_float16_embedding_cache_keeps_the_heads_results(tmp_path: Path) -> None:
    """The frozen cache stores a speech transformer's pooled layers as float16: the head's
    logits on them stay within 1e-3 of those on the float32 embeddings."""
    rng = np.random.default_rng(0)
    wav = tmp_path / "wav"
    wav.mkdir()
    import soundfile as sf

    from segser.data.corpora.clips import Clip

    clips = []
    for i in range(6):
        path = wav / f"c{i}.wav"
        sf.write(path, 0.2 * rng.standard_normal(16000 + 4000 * i), 16000, subtype="PCM_16")
        clips.append(Clip(f"c{i}", path, "angry", f"s{i}", "S1", "x"))
    segments = build_or_open_waveforms(
        clips, tmp_path / "cache", SegmentationSettings(), WaveformSettings()
    )
    torch.manual_seed(0)
    backbone = SpeechTransformer(
        "WAVLM_BASE_PLUS", architecture=tiny_architecture("WAVLM_BASE_PLUS", 3)
    )
    cache = build_or_open_embeddings(segments, backbone)
    assert cache.embeddings.dtype == np.float16 and isinstance(cache.embeddings, np.memmap)
    rows = len(segments)
    lengths = segments.lengths(0, rows)
    assert (lengths < 16000).any()  # padded tails: the build passes their valid lengths
    with torch.no_grad():
        exact = backbone.eval()(segments.inputs(0, rows), lengths)
    assert (cache.directory / "embeddings.f16").stat().st_size == exact.numel() * 2
    stored = torch.from_numpy(cache.rows().take(np.arange(len(exact))))  # as the head is served
    head = ClassificationHead(exact.shape[1], 200, 4, input_norm=True, layer_sum=True,
                              layer_dims=backbone.layer_dims)  # fmt: skip
    head.standardizer.fit(exact.sum(0), exact.square().sum(0), len(exact))
    with torch.no_grad():
        difference = (head(stored) - head(exact)).abs().max()
    assert 0 < difference < 1e-3
