"""Weight loading: torch.hub download (file:// URLs, never the internet), hashes, bad files."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from segser.errors import SegserError
from segser.models.weights import (
    TORCHVGGISH_WEIGHTS_SHA256,
    TORCHVGGISH_WEIGHTS_URL,
    load_vggish,
    load_vggish_state_dict,
)


def _touch(path: str) -> None:
    Path(path).touch()


class _Payload:
    """Unpickling this creates a marker file: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    return {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.tensor([0.5, -0.5])}


@pytest.fixture
def served(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    """A weights file named the torch.hub way: vggish-<first 8 hex of its sha256>.pth."""
    (tmp_path / "server").mkdir()
    raw = tmp_path / "server" / "raw.pth"
    torch.save(state, raw)
    named = raw.with_name(f"vggish-{_sha256(raw)[:8]}.pth")
    raw.rename(named)
    return named


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_published_constants_agree() -> None:
    assert TORCHVGGISH_WEIGHTS_URL.endswith("/v0.1/vggish-10086976.pth")
    assert (
        TORCHVGGISH_WEIGHTS_SHA256.startswith("10086976") and len(TORCHVGGISH_WEIGHTS_SHA256) == 64
    )


def test_download_checks_hash_caches_and_loads(
    tmp_path: Path, served: Path, state: dict[str, torch.Tensor]
) -> None:
    cache = tmp_path / "checkpoints"
    loaded = load_vggish_state_dict("torchvggish", model_dir=str(cache), url=served.as_uri())
    assert loaded is not None and loaded.keys() == state.keys()
    torch.testing.assert_close(loaded["weight"], state["weight"])
    assert _sha256(cache / served.name) == _sha256(served)
    # The second call is served from the cache: the "server" file is gone.
    served.unlink()
    again = load_vggish_state_dict("torchvggish", model_dir=str(cache), url=served.as_uri())
    assert again is not None
    torch.testing.assert_close(again["bias"], state["bias"])


def test_download_with_wrong_hash_in_name_fails_and_saves_nothing(
    tmp_path: Path, served: Path
) -> None:
    wrong = served.with_name("vggish-00000000.pth")
    assert not _sha256(served).startswith("00000000")
    served.rename(wrong)
    cache = tmp_path / "checkpoints"
    with pytest.raises(SegserError, match="00000000") as err:
        load_vggish_state_dict("torchvggish", model_dir=str(cache), url=wrong.as_uri())
    assert "vggish-00000000.pth" in str(err.value)
    assert not (cache / wrong.name).exists()


def test_corrupt_cached_file_is_refused(tmp_path: Path, served: Path) -> None:
    cache = tmp_path / "checkpoints"
    cache.mkdir()
    (cache / served.name).write_bytes(b"truncated download")
    with pytest.raises(SegserError, match="sha256") as err:
        load_vggish_state_dict("torchvggish", model_dir=str(cache), url=served.as_uri())
    assert served.name in str(err.value)


def test_cached_release_name_is_checked_against_full_published_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: Path
) -> None:
    """Default cache is $TORCH_HOME/hub/checkpoints; the release's name promises the full sha256."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    served.rename(checkpoints / "vggish-10086976.pth")
    with pytest.raises(SegserError, match=TORCHVGGISH_WEIGHTS_SHA256):
        load_vggish_state_dict("torchvggish")


def test_unreachable_url_gives_one_line_with_the_fix(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/vggish-10086976.pth"
    with pytest.raises(SegserError) as err:
        load_vggish_state_dict("torchvggish", model_dir=str(tmp_path), url=url)
    message = str(err.value)
    assert "\n" not in message
    assert url in message
    assert "backbone.weights=/path/to/vggish-10086976.pth" in message
    assert "$TORCH_HOME/hub/checkpoints/" in message


def test_local_file_loads(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "my_weights.pth"
    torch.save(state, path)
    loaded = load_vggish_state_dict(str(path))
    assert loaded is not None
    torch.testing.assert_close(loaded["weight"], state["weight"])


def test_local_file_with_hash_suffix_is_checked(served: Path, state: dict) -> None:
    loaded = load_vggish_state_dict(str(served))
    assert loaded is not None
    torch.testing.assert_close(loaded["bias"], state["bias"])
    renamed = served.rename(served.with_name("vggish-10086976.pth"))
    with pytest.raises(SegserError, match=TORCHVGGISH_WEIGHTS_SHA256) as err:
        load_vggish_state_dict(str(renamed))
    assert str(renamed) in str(err.value)


def test_missing_local_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vggish.pth"
    with pytest.raises(SegserError, match="not found") as err:
        load_vggish_state_dict(str(missing))
    assert str(missing) in str(err.value)


def test_none_means_random_init(tmp_path: Path) -> None:
    assert load_vggish_state_dict("none") is None
    model = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_vggish(model, "none")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    with pytest.raises(SegserError, match="weights_only=True") as err:
        load_vggish_state_dict(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert "_touch" in str(err.value)  # names the refused global
    assert not marker.exists()


def test_pickled_code_is_refused_on_download_too(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    raw = tmp_path / "raw.pth"
    torch.save({"payload": _Payload(marker)}, raw)
    served = raw.rename(raw.with_name(f"vggish-{_sha256(raw)[:8]}.pth"))
    with pytest.raises(SegserError, match="weights_only=True"):
        load_vggish_state_dict("torchvggish", model_dir=str(tmp_path / "c"), url=served.as_uri())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [([torch.zeros(2)], "holds a list"), ({"w": 1.5}, "not a state dict"), (None, "NoneType")],
)
def test_not_a_state_dict(tmp_path: Path, content: object, problem: str) -> None:
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(SegserError, match=problem):
        load_vggish_state_dict(str(path))


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(SegserError, match="cannot be read"):
        load_vggish_state_dict(str(path))


def test_load_into_model_is_strict_with_one_line_report(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    path = tmp_path / "other.pth"
    state = {
        "0.weight": torch.zeros(2, 3),
        "0.bias": torch.zeros(5),  # wrong shape
        "2.weight": torch.zeros(1, 2),
        "extra.weight": torch.zeros(1),  # unexpected; 2.bias missing
    }
    torch.save(state, path)
    with pytest.raises(SegserError) as err:
        load_vggish(model, str(path))
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "missing keys 2.bias" in message
    assert "unexpected keys extra.weight" in message
    assert "0.bias (5,) (model: (2,))" in message


def test_load_into_model_copies_values(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    state = {"weight": torch.full((2, 3), 0.25), "bias": torch.tensor([1.0, -1.0])}
    path = tmp_path / "fits.pth"
    torch.save(state, path)
    assert load_vggish(model, str(path)) is model
    torch.testing.assert_close(model.weight.detach(), state["weight"])
    torch.testing.assert_close(model.bias.detach(), state["bias"])
