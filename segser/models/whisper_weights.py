"""Whisper encoder weights from every format users hold, as OpenAI's `encoder.*` state dict.

- OpenAI's checkpoint (`~/.cache/whisper/<name>.pt`: {"dims", "model_state_dict"}), read with
  torch.load(weights_only=True); segser's packaged tiny.en encoder is one (float16, encoder only).
- Hugging Face `openai/whisper-*` (`model.safetensors`, sharded or not, `config.json` beside it).
- A CTranslate2 / faster-whisper directory (`model.bin`, CTranslate2's own binary format).
Each reader returns the encoder's tensors under OpenAI's names and the dims the file carries;
whisper.py checks those against the configured size and loads them strictly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

from segser.errors import SegserError
from segser.models.weights import file_sha256, load_state_dict_file
from segser.models.whisper_ct2 import read_ctranslate2

PACKAGED_WHISPER = Path(__file__).parent / "pretrained" / "whisper-tiny.en-encoder.pt"
PACKAGED_WHISPER_SHA256 = "4b100ab7cba035f22202c51bd8e3f612adf49274f1620689d2db6fdd9b401e54"
DIM_KEYS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")
_FIX = (
    "Pass backbone.weights=packaged, an openai-whisper checkpoint (.pt), a Hugging Face "
    "openai/whisper-* directory or model.safetensors, a CTranslate2 (faster-whisper) model "
    "directory, or 'none'"
)
# Hugging Face's WhisperEncoder names -> OpenAI's AudioEncoder names (per block after layers.N.)
_HF_BLOCK = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}  # fmt: skip


@dataclass(frozen=True)
class WhisperDims:
    """The encoder's half of openai-whisper's ModelDimensions."""

    n_mels: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_audio_ctx: int = 1500  # positions: 30 s of 20 ms frames


# The published encoders (openai-whisper's checkpoints; the .en ones share their size's dims,
# large-v3-turbo shares large-v3's encoder).
WHISPER_DIMS = MappingProxyType({
    **{name: WhisperDims(80, 384, 6, 4) for name in ("tiny", "tiny.en")},
    **{name: WhisperDims(80, 512, 8, 6) for name in ("base", "base.en")},
    **{name: WhisperDims(80, 768, 12, 12) for name in ("small", "small.en")},
    **{name: WhisperDims(80, 1024, 16, 24) for name in ("medium", "medium.en")},
    **{name: WhisperDims(80, 1280, 20, 32) for name in ("large-v1", "large-v2")},
    **{name: WhisperDims(128, 1280, 20, 32) for name in ("large-v3", "large-v3-turbo")},
})  # fmt: skip


def whisper_dims(size: str, overrides: Mapping[str, int] | None = None) -> WhisperDims:
    """The published dims of `size`, with `overrides` (small test networks) applied."""
    if size not in WHISPER_DIMS:
        raise SegserError(
            f"backbone.net.size={size!r} is not a published Whisper; choose one of "
            f"{', '.join(WHISPER_DIMS)}"
        )
    fields = set(asdict(WHISPER_DIMS[size]))
    if unknown := sorted(set(overrides or {}) - fields):
        raise SegserError(
            f"backbone.net.dims has unknown keys {unknown}; allowed: {sorted(fields)}"
        )
    return replace(WHISPER_DIMS[size], **dict(overrides or {}))


@dataclass(frozen=True)
class EncoderWeights:
    """An encoder's tensors under OpenAI's AudioEncoder names, and the dims its file states."""

    state: dict[str, Tensor]
    dims: dict[str, int]
    source: str


def openai_cache_path(size: str) -> Path:
    """Where openai-whisper's `load_model(size)` keeps its download: $XDG_CACHE_HOME/whisper
    (default ~/.cache/whisper)/<size>.pt."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "whisper" / f"{size}.pt"


def read_encoder_weights(source: str, size: str = "tiny.en") -> EncoderWeights:
    """ "packaged" (sha256-checked), "openai" (openai-whisper's cached download of `size`), or
    a path to any supported format (see the module doc)."""
    if source == "packaged":
        return read_openai_checkpoint(packaged_path(), "packaged")
    if source == "openai":
        cached = openai_cache_path(size)
        if not cached.is_file():
            raise SegserError(
                f"{cached}: Whisper {size} is not in openai-whisper's cache. On a machine with "
                f"internet run python -c \"import whisper; whisper.load_model('{size}')\" and "
                "copy the file there, or pass backbone.weights=/path/to/file"
            )
        return read_openai_checkpoint(cached)
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "model.bin").is_file():
            return EncoderWeights(*read_ctranslate2(path, _FIX), str(path))
        if (path / "model.safetensors").is_file() or (path / _HF_INDEX).is_file():
            return read_hugging_face(path)
        raise SegserError(
            f"{path}: holds neither model.bin (CTranslate2) nor model.safetensors (Hugging "
            f"Face). {_FIX}"
        )
    if not path.is_file():
        raise SegserError(f"{path}: Whisper weights not found. {_FIX}")
    if path.name.endswith(".safetensors") or path.name == _HF_INDEX:
        return read_hugging_face(path.parent if path.name == _HF_INDEX else path)
    if path.name == "model.bin":
        return EncoderWeights(*read_ctranslate2(path.parent, _FIX), str(path.parent))
    return read_openai_checkpoint(path)


def packaged_path(path: Path = PACKAGED_WHISPER) -> Path:
    """The vendored tiny.en encoder, refused unless its sha256 is the published one."""
    if not path.is_file():
        raise SegserError(
            f"{path}: packaged Whisper tiny.en weights are missing. Reinstall segser."
        )
    digest = file_sha256(path)
    if digest != PACKAGED_WHISPER_SHA256:
        raise SegserError(
            f"{path}: sha256 is {digest}, not the packaged Whisper tiny.en encoder's "
            f"{PACKAGED_WHISPER_SHA256} (corrupt or replaced). Reinstall segser, or pass your "
            "file as backbone.weights=PATH."
        )
    return path


def read_openai_checkpoint(path: Path, name: str | None = None) -> EncoderWeights:
    """openai-whisper's {"dims": {...}, "model_state_dict": {...}}: only `encoder.*` is kept."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file, or refused by weights_only: same message as others
        load_state_dict_file(str(path), fix=_FIX)  # raises its one-line SegserError
        raise
    if not (
        isinstance(checkpoint, Mapping)
        and isinstance(checkpoint.get("dims"), Mapping)
        and isinstance(checkpoint.get("model_state_dict"), Mapping)
    ):
        found = sorted(checkpoint)[:5] if isinstance(checkpoint, Mapping) else type(checkpoint)
        raise SegserError(
            f"{path}: not an openai-whisper checkpoint (a dict with 'dims' and "
            f"'model_state_dict'; found {found}). {_FIX}"
        )
    dims = _dims(path, checkpoint["dims"], DIM_KEYS, "dims")
    prefix = "encoder."
    state = {
        key[len(prefix) :]: value
        for key, value in checkpoint["model_state_dict"].items()
        if key.startswith(prefix) and isinstance(value, Tensor)
    }
    if not state:
        raise SegserError(f"{path}: model_state_dict has no 'encoder.*' tensors. {_FIX}")
    return EncoderWeights(state, dims, name or str(path))


_HF_INDEX = "model.safetensors.index.json"
_HF_DIMS = {  # openai/whisper-* config.json keys -> OpenAI's dims
    "num_mel_bins": "n_mels", "max_source_positions": "n_audio_ctx", "d_model": "n_audio_state",
    "encoder_attention_heads": "n_audio_head", "encoder_layers": "n_audio_layer",
}  # fmt: skip


def read_hugging_face(path: Path) -> EncoderWeights:
    """A Hugging Face Whisper: `model.safetensors` (or its shards) + `config.json` beside it."""
    from safetensors import safe_open

    folder = path if path.is_dir() else path.parent
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SegserError(
            f"{config_path}: missing; a Hugging Face Whisper's dims are in it. {_FIX}"
        )
    config = _json(config_path)
    dims = _dims(config_path, {_HF_DIMS.get(k, k): v for k, v in config.items()}, DIM_KEYS, "")
    if path.is_dir() and not (path / "model.safetensors").is_file():
        weight_map = _json(path / _HF_INDEX).get("weight_map", {})
        files = sorted({folder / f for k, f in weight_map.items() if "encoder." in k})
    else:
        files = [path if path.is_file() else path / "model.safetensors"]
    state: dict[str, Tensor] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                    name = key.removeprefix("model.")
                    if name.startswith("encoder."):
                        state[_hf_name(name.removeprefix("encoder."))] = handle.get_tensor(key)
        except SegserError:
            raise
        except Exception as err:
            raise SegserError(f"{file}: not a readable safetensors file ({err}). {_FIX}") from err
    if not state:
        raise SegserError(f"{files[0]}: has no 'model.encoder.*' tensors. {_FIX}")
    return EncoderWeights(state, dims, str(path))


def _hf_name(name: str) -> str:
    if name == "embed_positions.weight":
        return "positional_embedding"
    if name.startswith("layer_norm."):
        return "ln_post." + name.removeprefix("layer_norm.")
    if name.startswith("layers."):
        _, index, rest = name.split(".", 2)
        module, _, param = rest.rpartition(".")
        return f"blocks.{index}.{_HF_BLOCK.get(module, module)}.{param}"
    return name  # conv1.*, conv2.*; anything else is refused by the strict load, by its name


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SegserError(f"{path}: not readable JSON ({err}). {_FIX}") from err


def _dims(
    path: Path, found: Mapping[str, Any], keys: tuple[str, ...], where: str
) -> dict[str, int]:
    missing = [key for key in keys if not isinstance(found.get(key), int)]
    if missing:
        raise SegserError(
            f"{path}: {where + ' ' if where else ''}lacks the encoder dims {missing}. {_FIX}"
        )
    return {key: int(found[key]) for key in keys}
