"""Where a self-supervised speech model's weights come from: torchaudio's release, a file, none.

`bundle`: the file torchaudio's bundle names (`_path`), in torch.hub's cache
(`$TORCH_HOME/hub/checkpoints/`), downloaded there by torch.hub if it is missing, as
`bundle.get_model()` does; offline, the user copies the file there. A path: a state dict in
torchaudio's layout (`model.state_dict()` of `torchaudio.models.wav2vec2_model(...)`).
Every file is read with `torch.load(weights_only=True)`.

torchaudio's released files keep the old weight-norm layout of the positional convolution
(`...pos_conv_embed.conv.weight_g` / `weight_v`, `torch.nn.utils.weight_norm`); torchaudio >= 2.1
builds it with `parametrizations.weight_norm` (`...conv.parametrizations.weight.original0` /
`original1`, the same tensors) and renames them inside `load_state_dict`. The strict key check
below runs first, so the old names are renamed here: both layouts load, to the same network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from segser.errors import SegserError
from segser.models.weights import load_state_dict_file, load_strictly

TORCHAUDIO_MODELS_URL = "https://download.pytorch.org/torchaudio/models/"
_FIX = "Pass a state dict of torchaudio's model (torch.save(model.state_dict(), path))"


def bundle_url(file_name: str) -> str:
    """The download address torchaudio's bundle uses for its file (pipelines/_wav2vec2/utils)."""
    return TORCHAUDIO_MODELS_URL + file_name


def bundle_state_dict(file_name: str, model_dir: str | Path | None = None) -> dict[str, Tensor]:
    """The released state dict: the cached file, else torch.hub's download (one line offline)."""
    folder = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "checkpoints"
    cached = folder / file_name
    if cached.is_file():
        return load_state_dict_file(str(cached), "'bundle' or 'none'", _FIX)
    url = bundle_url(file_name)
    try:
        torch.hub.load_state_dict_from_url(
            url, model_dir=str(folder), map_location="cpu", weights_only=True
        )
    except OSError as error:  # URLError, HTTPError, no network: say where the file goes
        reason = " ".join(str(getattr(error, "reason", error)).split())
        raise SegserError(
            f"{file_name}: not in {folder} and it could not be downloaded from {url} ({reason}). "
            f"Copy the file into {folder} (or set $TORCH_HOME), pass "
            "backbone.weights=/path/to/it.pth, or backbone.weights=none for random weights"
        ) from error
    return load_state_dict_file(str(cached), "'bundle' or 'none'", _FIX)


# old weight_norm name -> parametrizations.weight_norm name (g: the norm, v: the direction)
_WEIGHT_NORM_NAMES = {"weight_g": "parametrizations.weight.original0",
                      "weight_v": "parametrizations.weight.original1"}  # fmt: skip


def current_layout(state: dict[str, Tensor], expected: set[str]) -> dict[str, Tensor]:
    """`state` with old weight-norm keys renamed to the parametrized names `expected` holds."""
    renamed = {}
    for key, value in state.items():
        module, _, name = key.rpartition(".")
        new = f"{module}.{_WEIGHT_NORM_NAMES[name]}" if name in _WEIGHT_NORM_NAMES else key
        renamed[new if new in expected and new not in state else key] = value
    return renamed


def load_ssl_weights(model: nn.Module, source: str, file_name: str) -> None:
    """Load `source` ("bundle", a path, or "none") into torchaudio's `model`, strictly."""
    if source == "none":
        return
    if source == "bundle":
        state = bundle_state_dict(file_name)
    else:
        state = load_state_dict_file(source, "'bundle' or 'none'", _FIX)
    load_strictly(model, current_layout(state, set(model.state_dict())), source, _FIX)
