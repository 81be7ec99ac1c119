"""Where backbone weights come from: torchvggish's release (via torch.hub's cache), a file, or none.

Files are read with `torch.load(weights_only=True)`, so a checkpoint cannot run code, and their
sha256 is checked whenever the name carries torch.hub's `name-<sha256 prefix>.ext` suffix.
`load_state_dict_file` and `load_strictly` serve every backbone; the rest is VGGish's download.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from segser.errors import SegserError

TORCHVGGISH_WEIGHTS_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
)
TORCHVGGISH_WEIGHTS_SHA256 = "10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b"

# torch.hub's `name-<hex>.ext`, with at least 8 hex digits so `model-1.pth` is not read as a hash.
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,})\.")
_LOCAL_FIX = (
    "Pass a local copy with backbone.weights=/path/to/vggish-10086976.pth "
    "or put it in $TORCH_HOME/hub/checkpoints/"
)
_FORMAT_FIX = "Pass torchvggish's vggish-10086976.pth or a file saved with torch.save(state_dict)"


def load_vggish_state_dict(
    source: str, model_dir: str | None = None, url: str = TORCHVGGISH_WEIGHTS_URL
) -> dict[str, Tensor] | None:
    """Read weights from `source`: "torchvggish" (download `url` once into `model_dir`, torch.hub's
    cache by default), a path to a state-dict file, or "none" (None: keep the random init)."""
    if source == "none":
        return None
    if source == "torchvggish":
        return _download(url, model_dir)
    return load_state_dict_file(
        source, "'torchvggish' (download the released weights) or 'none'", _FORMAT_FIX
    )


def load_state_dict_file(
    source: str, named: str = "'none'", fix: str = _FORMAT_FIX
) -> dict[str, Tensor]:
    """A state dict of tensors from a file, sha256-checked against a torch.hub name suffix;
    `named`: the other values backbone.weights accepts, for the not-found message."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise SegserError(
            f"{path}: weights file not found. Pass an existing file, {named} as backbone.weights"
        )
    _check_sha256(path, "Use the released file, or rename your own file without a hash suffix")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # garbage raises anything from KeyError to UnpicklingError
        raise _unreadable(path, err, fix) from err
    return _as_state_dict(path, state, fix)


def load_vggish(
    model: nn.Module, source: str, model_dir: str | None = None, url: str = TORCHVGGISH_WEIGHTS_URL
) -> nn.Module:
    """Load `source` (as load_vggish_state_dict reads it) into `model` strictly; one-line error."""
    state = load_vggish_state_dict(source, model_dir, url)
    if state is not None:
        load_strictly(model, state, source)
    return model


def load_strictly(
    model: nn.Module, state: Mapping[str, Tensor], source: str, fix: str = _FORMAT_FIX
) -> None:
    """`model.load_state_dict(state, strict=True)`, with every misfit named in one line."""
    expected = model.state_dict()
    problems = []
    if missing := sorted(expected.keys() - state.keys()):
        problems.append(f"missing keys {_some(missing)}")
    if unexpected := sorted(state.keys() - expected.keys()):
        problems.append(f"unexpected keys {_some(unexpected)}")
    mismatched = [
        f"{key} {tuple(state[key].shape)} (model: {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    if mismatched:
        problems.append(f"wrong shapes {_some(mismatched)}")
    if problems:
        raise SegserError(
            f"{source}: does not fit {type(model).__name__}: {'; '.join(problems)}. {fix}"
        )
    model.load_state_dict(state, strict=True)


def _download(url: str, model_dir: str | None) -> dict[str, Tensor]:
    """torch.hub download + cache; its hash check only runs while downloading, so check a cached
    file ourselves, and check the full published sha256 after a fresh download."""
    checkpoints = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "checkpoints"
    cached = checkpoints / Path(urlparse(url).path).name
    fresh = not cached.is_file()
    if not fresh:
        _check_sha256(cached, f"Delete it to download it again. {_LOCAL_FIX}")
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(checkpoints),
            map_location="cpu",
            check_hash=True,
            weights_only=True,
        )
    except Exception as err:
        if cached.is_file():  # the file is there, so torch.load failed on it
            raise _unreadable(cached, err) from err
        if isinstance(err, RuntimeError):  # torch.hub refuses a download whose hash is wrong
            raise SegserError(
                f"{url}: downloaded file does not match the sha256 prefix "
                f"{_expected_sha256(cached.name)} in its name ({_one_line(err)}); "
                f"nothing was saved. {_LOCAL_FIX}"
            ) from err
        if isinstance(err, OSError):  # URLError, HTTPError, refused connection, no network
            reason = getattr(err, "reason", err)
            raise SegserError(
                f"could not download VGGish weights from {url} ({_one_line(reason)}). {_LOCAL_FIX}"
            ) from err
        raise
    if fresh:
        _check_sha256(cached, f"Delete it and check {url}. {_LOCAL_FIX}")
    return _as_state_dict(cached, state)


def _expected_sha256(file_name: str) -> str | None:
    """The hash a file name promises: the full published one for the release, else its prefix."""
    match = _HASH_SUFFIX.search(file_name)
    if match is None:
        return None
    prefix = match.group(1)
    return TORCHVGGISH_WEIGHTS_SHA256 if TORCHVGGISH_WEIGHTS_SHA256.startswith(prefix) else prefix


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check_sha256(path: Path, fix: str) -> None:
    expected = _expected_sha256(path.name)
    if expected is None:
        return
    digest = file_sha256(path)
    if not digest.startswith(expected):
        raise SegserError(
            f"{path}: sha256 is {digest}, its name promises {expected} (corrupt or another file). "
            + fix
        )


def _as_state_dict(path: Path, state: Any, fix: str = _FORMAT_FIX) -> dict[str, Tensor]:
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise SegserError(
            f"{path}: holds a {type(state).__name__}, not a state dict of tensors. {fix}"
        )
    return dict(state)


def _unreadable(path: Path, err: BaseException, fix: str = _FORMAT_FIX) -> SegserError:
    # torch's weights_only message is a page of boilerplate; keep the first sentence that says why
    # (the refused GLOBAL, say), and never its advice to allow-list globals or drop weights_only.
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(boilerplate)]
    why = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else "")
    why = why.split(". ")[0].rstrip(".") or type(err).__name__
    return SegserError(
        f"{path}: cannot be read as a state dict by torch.load(weights_only=True) ({why}). {fix}"
    )


def _one_line(obj: object) -> str:
    return " ".join(str(obj).split())


def _some(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
