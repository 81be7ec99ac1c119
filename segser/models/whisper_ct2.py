"""CTranslate2 / faster-whisper Whisper models: a reader of `model.bin`'s encoder variables.

CTranslate2's binary format is read from its own source (python/ctranslate2/specs/model_spec.py
`_serialize` writes it, src/models/model.cc reads it); the names are WhisperEncoderSpec's.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from segser.errors import SegserError

# CTranslate2's WhisperEncoderSpec names (after encoder/layer_N/) -> OpenAI's
_CT2_BLOCK = {
    "self_attention/linear_1": "attn.out", "self_attention/layer_norm": "attn_ln",
    "ffn/linear_0": "mlp.0", "ffn/linear_1": "mlp.2", "ffn/layer_norm": "mlp_ln",
}  # fmt: skip
_CT2_PARAM = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
# CTranslate2's DataType enum (include/ctranslate2/types.h), as specs/model_spec.py writes it
_CT2_DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)
_CT2_BINARY_VERSION = 6  # model_spec.CURRENT_BINARY_VERSION since CTranslate2 3.0


def read_ctranslate2(folder: Path, fix: str = "") -> tuple[dict[str, Tensor], dict[str, int]]:
    """A CTranslate2 Whisper dir: its encoder's tensors under OpenAI's names (int8 weights
    dequantized) and its dims; `fix`: what to do instead, for the one-line errors."""
    path = folder / "model.bin"
    variables = _read_ct2_encoder(path, fix)
    try:
        state = _ct2_to_openai(variables)
        conv1 = state["conv1.weight"]
        dims = {
            "n_mels": conv1.shape[1],
            "n_audio_ctx": state["positional_embedding"].shape[0],
            "n_audio_state": conv1.shape[0],
            "n_audio_head": int(variables["encoder/num_heads"]),
            "n_audio_layer": sum(1 for k in state if k.endswith(".attn_ln.weight")),
        }
    except KeyError as err:
        raise SegserError(f"{path}: the Whisper encoder variable {err} is missing. {fix}") from err
    return state, dims


def _ct2_to_openai(variables: Mapping[str, Tensor]) -> dict[str, Tensor]:
    def weight(name: str) -> Tensor:  # int8 weights carry a per-row scale: w = q / scale
        value = variables[name + "/weight"]
        scale = variables.get(name + "/weight_scale")
        if scale is not None:
            value = value.float() / scale.float().reshape(-1, *[1] * (value.ndim - 1))
        return value

    state = {
        "positional_embedding": variables["encoder/position_encodings/encodings"],
        "ln_post.weight": variables["encoder/layer_norm/gamma"],
        "ln_post.bias": variables["encoder/layer_norm/beta"],
    }
    for conv in ("conv1", "conv2"):
        state[f"{conv}.weight"] = weight(f"encoder/{conv}")
        state[f"{conv}.bias"] = variables[f"encoder/{conv}/bias"]
    index = 0
    while f"encoder/layer_{index}/ffn/linear_0/weight" in variables:
        layer, block = f"encoder/layer_{index}", f"blocks.{index}"
        query, key, value = weight(f"{layer}/self_attention/linear_0").chunk(3)
        q_bias, _, v_bias = variables[f"{layer}/self_attention/linear_0/bias"].chunk(3)
        # The fused projection has a key bias (the converter writes zeros): a constant added
        # to every score of one query, which softmax removes, so dropping it is exact.
        state.update({
            f"{block}.attn.query.weight": query, f"{block}.attn.query.bias": q_bias,
            f"{block}.attn.key.weight": key,
            f"{block}.attn.value.weight": value, f"{block}.attn.value.bias": v_bias,
        })  # fmt: skip
        for ct2, ours in _CT2_BLOCK.items():
            for param in ("weight", "bias", "gamma", "beta"):
                name = f"{layer}/{ct2}/{param}"
                if name in variables:
                    state[f"{block}.{ours}.{_CT2_PARAM[param]}"] = (
                        weight(f"{layer}/{ct2}") if param == "weight" else variables[name]
                    )
        index += 1
    return state


def _read_ct2_encoder(path: Path, fix: str) -> dict[str, Tensor]:
    """CTranslate2's model.bin (models/model.cc reads it; specs/model_spec.py `_serialize`
    writes it), little-endian: u32 binary version, string spec name, u32 spec revision, u32
    variable count, then per variable: string name, u8 rank, u32 dims, u8 dtype id, u32 byte
    count, bytes; then u32 alias count and (alias, target) string pairs. A string is a u16
    length (with the trailing NUL) and the bytes. Only `encoder/*` variables are read."""
    if not path.is_file():
        raise SegserError(f"{path}: CTranslate2 model.bin not found. {fix}")
    try:
        with path.open("rb") as handle:
            version = _u(handle, "I")
            if version != _CT2_BINARY_VERSION:
                raise SegserError(
                    f"{path}: CTranslate2 binary version {version}, segser reads version "
                    f"{_CT2_BINARY_VERSION} (CTranslate2 >= 3). Convert the model again with a "
                    "current ct2-transformers-converter"
                )
            spec = _string(handle)
            if spec != "WhisperSpec":
                raise SegserError(f"{path}: a CTranslate2 {spec}, not a WhisperSpec. {fix}")
            _u(handle, "I")  # spec revision
            variables: dict[str, Tensor] = {}
            for _ in range(_u(handle, "I")):
                name = _string(handle)
                shape = [_u(handle, "I") for _ in range(_u(handle, "B"))]
                dtype_id, size = _u(handle, "B"), _u(handle, "I")
                if not name.startswith("encoder/"):
                    handle.seek(size, 1)
                    continue
                data = bytearray(handle.read(size))
                if len(data) != size or dtype_id >= len(_CT2_DTYPES):
                    raise SegserError(f"{path}: truncated or corrupt at variable {name}. {fix}")
                tensor = torch.frombuffer(data, dtype=_CT2_DTYPES[dtype_id]) if size else None
                variables[name] = (tensor if tensor is not None else torch.empty(0)).reshape(shape)
            for _ in range(_u(handle, "I")):
                alias, target = _string(handle), _string(handle)
                if alias.startswith("encoder/") and target in variables:
                    variables[alias] = variables[target]
    except (struct.error, UnicodeDecodeError, RuntimeError) as err:
        raise SegserError(f"{path}: not a readable CTranslate2 model.bin ({err}). {fix}") from err
    return variables


def _u(handle: BinaryIO, fmt: str) -> int:
    size = struct.calcsize("<" + fmt)
    return struct.unpack("<" + fmt, handle.read(size))[0]


def _string(handle: BinaryIO) -> str:
    length = _u(handle, "H")
    return handle.read(length)[:-1].decode("utf-8")
