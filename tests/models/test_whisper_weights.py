"""Whisper weights from every format: the same embedding from each, one line for each misfit."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from segser.errors import SegserError
from segser.models.whisper import WhisperBackbone
from segser.models.whisper_weights import PACKAGED_WHISPER, packaged_path, read_encoder_weights
from tests.whisper_tiny import SMALL_DIMS, write_ctranslate2_dir

DIMS = SMALL_DIMS[1]
SEGMENTS = 0.1 * torch.randn(2, 1, 16000, generator=torch.Generator().manual_seed(0))


def random_state(dims: dict = DIMS) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    net = WhisperBackbone("tiny", dims=dims)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(0.2 * torch.randn_like(param))
    return dict(net.encoder.state_dict())


def write_openai(state: dict, dims: dict, path: Path) -> Path:
    """openai-whisper's checkpoint layout: text dims and a decoder tensor beside the encoder."""
    full_dims = {"n_audio_ctx": 1500, **dims, "n_vocab": 8, "n_text_ctx": 4, "n_text_state": 8,
                 "n_text_head": 1, "n_text_layer": 1}  # fmt: skip
    model = {f"encoder.{k}": v for k, v in state.items()} | {"decoder.ln.weight": torch.ones(8)}
    torch.save({"dims": full_dims, "model_state_dict": model}, path)
    return path


def hf_name(key: str) -> str:
    """OpenAI's name -> Hugging Face WhisperForConditionalGeneration's."""
    names = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj",
             "attn.value": "self_attn.v_proj", "attn.out": "self_attn.out_proj",
             "attn_ln": "self_attn_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2",
             "mlp_ln": "final_layer_norm"}  # fmt: skip
    if key == "positional_embedding":
        return "model.encoder.embed_positions.weight"
    if key.startswith("ln_post."):
        return "model.encoder.layer_norm." + key.split(".")[1]
    if key.startswith("blocks."):
        _, index, rest = key.split(".", 2)
        module, param = rest.rsplit(".", 1)
        return f"model.encoder.layers.{index}.{names[module]}.{param}"
    return "model.encoder." + key


def write_hugging_face(state: dict, dims: dict, folder: Path) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {hf_name(k): v.contiguous() for k, v in state.items()}
    tensors["model.decoder.embed_tokens.weight"] = torch.zeros(8, dims["n_audio_state"])
    save_file(tensors, str(folder / "model.safetensors"))
    config = {"num_mel_bins": dims["n_mels"], "d_model": dims["n_audio_state"],
              "encoder_attention_heads": dims["n_audio_head"],
              "encoder_layers": dims["n_audio_layer"], "max_source_positions": 1500,
              "decoder_layers": 1}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def embed(source: str, dims: dict | None = DIMS, size: str = "tiny") -> torch.Tensor:
    net = WhisperBackbone(size, dims=dims).eval()
    net.load_weights(source)
    with torch.no_grad():
        return net(SEGMENTS)


def test_every_format_gives_the_same_embedding(tmp_path: Path) -> None:
    pytest.importorskip("ctranslate2", reason="ctranslate2 (dev extra) absent")
    state = random_state()
    reference = WhisperBackbone("tiny", dims=DIMS).eval()
    reference.encoder.load_state_dict(state)
    with torch.no_grad():
        expected = reference(SEGMENTS)
    openai = write_openai(state, DIMS, tmp_path / "small.pt")
    hf = write_hugging_face(state, DIMS, tmp_path / "hf")
    ct2 = write_ctranslate2_dir(state, DIMS["n_audio_head"], tmp_path / "ct2")
    sources = [openai, hf, hf / "model.safetensors", ct2, ct2 / "model.bin"]
    for source in sources:
        torch.testing.assert_close(embed(str(source)), expected, msg=str(source))
    assert not torch.allclose(embed("none"), expected)


def test_dims_that_contradict_the_size_are_one_line(tmp_path: Path) -> None:
    path = write_openai(random_state(), DIMS, tmp_path / "small.pt")
    with pytest.raises(SegserError, match=r"builds \{'n_mels': 80, 'n_audio_state': 384") as err:
        embed(str(path), dims=None, size="tiny.en")
    assert "backbone.net.size=tiny.en" in str(err.value) and "\n" not in str(err.value)
    base = {"n_mels": 80, "n_audio_state": 512, "n_audio_head": 8, "n_audio_layer": 6}
    path = write_openai(random_state(), base, tmp_path / "base.pt")  # base's dims, wrong tensors
    with pytest.raises(SegserError, match=r"\(base or base.en\), but backbone.net.size=tiny.en"):
        embed(str(path), dims=None, size="tiny.en")


def test_missing_and_unexpected_tensors_are_one_line(tmp_path: Path) -> None:
    state = random_state()
    del state["blocks.1.mlp_ln.bias"]
    with pytest.raises(SegserError, match=r"missing keys blocks.1.mlp_ln.bias"):
        embed(str(write_openai(state, DIMS, tmp_path / "missing.pt")))
    state = random_state() | {"blocks.0.attn.key.bias": torch.zeros(96)}
    with pytest.raises(SegserError, match=r"unexpected keys blocks.0.attn.key.bias"):
        embed(str(write_openai(state, DIMS, tmp_path / "extra.pt")))
    hf = write_hugging_face(random_state(), DIMS, tmp_path / "hf")
    (hf / "config.json").unlink()
    with pytest.raises(SegserError, match=r"config.json: missing"):
        embed(str(hf))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint", "cannot be read as a state dict"),
        ("state dict", "not an openai-whisper checkpoint"),
    ],
)
def test_unreadable_openai_files_are_one_line(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(random_state(), path)  # a plain state dict: no dims
    with pytest.raises(SegserError, match=message):
        read_encoder_weights(str(path))


def test_bad_ctranslate2_files_are_one_line(tmp_path: Path) -> None:
    pytest.importorskip("ctranslate2", reason="ctranslate2 (dev extra) absent")
    folder = write_ctranslate2_dir(random_state(), DIMS["n_audio_head"], tmp_path / "ct2")
    model = folder / "model.bin"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 3])
    with pytest.raises(SegserError, match=r"model.bin: (truncated|not a readable)"):
        read_encoder_weights(str(folder))
    model.write_bytes(struct.pack("<I", 5) + data[4:])
    with pytest.raises(SegserError, match=r"binary version 5, segser reads version 6"):
        read_encoder_weights(str(folder))
    with pytest.raises(SegserError, match=r"neither model.bin"):
        read_encoder_weights(str(tmp_path))
    with pytest.raises(SegserError, match=r"Whisper weights not found"):
        read_encoder_weights(str(tmp_path / "nothing.pt"))


def test_packaged_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / PACKAGED_WHISPER.name
    data = bytearray(PACKAGED_WHISPER.read_bytes())
    data[-100] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(SegserError, match=r"sha256 is .*, not the packaged Whisper tiny.en"):
        packaged_path(copy)
    with pytest.raises(SegserError, match=r"weights are missing"):
        packaged_path(tmp_path / "absent.pt")


def test_packaged_tiny_en_loads_and_equals_an_openai_file_of_it(tmp_path: Path) -> None:
    weights = read_encoder_weights("packaged")
    assert weights.dims == {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384,
                            "n_audio_head": 6, "n_audio_layer": 4}  # fmt: skip
    assert all(v.dtype == torch.float16 for v in weights.state.values())
    state = {k: v.float() for k, v in weights.state.items()}
    path = write_openai(state, {k: v for k, v in weights.dims.items()}, tmp_path / "tiny.en.pt")
    torch.testing.assert_close(
        embed(str(path), dims=None, size="tiny.en"), embed("packaged", dims=None, size="tiny.en")
    )


def test_packaged_tiny_en_equals_ctranslate2_on_real_speech(tmp_path: Path) -> None:
    """The shipped encoder vs CTranslate2's own Whisper encoder (a C++ engine), on EmoDB
    speech: a CTranslate2 dir written from the packaged weights by ctranslate2's WhisperSpec."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 (dev extra) absent")
    import numpy as np
    import soundfile as sf
    import soxr

    from tests.conftest import SHARED_EMODB

    wavs = sorted(SHARED_EMODB.glob("*.wav"))[:3] if SHARED_EMODB.is_dir() else []
    if not wavs:
        pytest.skip(f"{SHARED_EMODB}: shared EmoDB data absent")
    segments = []
    for wav in wavs:
        audio, rate = sf.read(wav, dtype="float32")  # 22050 Hz in this copy
        audio = soxr.resample(audio, rate, 16000).astype(np.float32)
        segments += [audio[:16000], audio[8000:24000]]  # two 1 s segments of each clip
    weights = read_encoder_weights("packaged")
    folder = write_ctranslate2_dir(weights.state, 6, tmp_path / "ct2")
    net = WhisperBackbone("tiny.en", embedding_layers=[5]).eval()
    net.load_weights("packaged")
    with torch.no_grad():
        mel = net.logmel(torch.from_numpy(np.stack(segments)))
        ours = net.encoder(mel)
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    theirs = torch.from_numpy(
        np.array(model.encode(ctranslate2.StorageView.from_array(mel.numpy())))
    )
    assert theirs.shape == ours.shape == (6, 50, 384)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-3)
    print(f"max |segser - ctranslate2| = {(ours - theirs).abs().max():.2e}")


def test_sharded_hugging_face_weights_load(tmp_path: Path) -> None:
    """A sharded save (model.safetensors.index.json naming each tensor's file)."""
    from safetensors.torch import load_file, save_file

    state = random_state()
    folder = write_hugging_face(state, DIMS, tmp_path / "hf")
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}  # fmt: skip
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(folder / file))
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = read_encoder_weights(str(folder))
    assert loaded.state.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(loaded.state[key], value, msg=key)


def test_int8_ctranslate2_weights_are_dequantized(tmp_path: Path) -> None:
    """ct2 --quantization int8 stores q = round(w * 127 / max|row|) and the scale per row."""
    pytest.importorskip("ctranslate2", reason="ctranslate2 (dev extra) absent")
    state = random_state()
    folder = write_ctranslate2_dir(state, DIMS["n_audio_head"], tmp_path / "ct2", quantize="int8")
    loaded = read_encoder_weights(str(folder)).state
    for key in ("blocks.0.mlp.0.weight", "blocks.2.attn.value.weight", "blocks.1.attn.out.weight"):
        row_step = state[key].abs().amax(dim=1, keepdim=True) / 127
        assert ((loaded[key] - state[key]).abs() <= row_step / 2 + 1e-6).all(), key
        assert not torch.equal(loaded[key], state[key])  # it was quantized
