"""Where a self-supervised speech model's weights come from: torchaudio's release, a file, none.

`bundle`: the file torchaudio's bundle names (`_path`), in torch.hub's cache
(`$TORCH_HOME/hub/checkpoints/`), downloaded there by torch.hub if it is missing, as
`bundle.get_model()` does; offline, the user copies the file there. A path: a state dict in
torchaudio's layout (`model.state_dict()` of `torchaudio.models.wav2vec2_model(...)`).
Every file is read with `torch.load(weights_only=True)`.
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


def load_ssl_weights(model: nn.Module, source: str, file_name: str) -> None:
    """Load `source` ("bundle", a path, or "none") into torchaudio's `model`, strictly."""
    if source == "none":
        return
    if source == "bundle":
        state = bundle_state_dict(file_name)
    else:
        state = load_state_dict_file(source, "'bundle' or 'none'", _FIX)
    load_strictly(model, state, source, _FIX)
