"""Bad config values fail at start in one line naming the key and its range, before any work."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from segser.errors import SegserError
from segser.models.backbone import Backbone
from segser.setup.config_checks import check_config
from tests.hydra_app import composed, options
from tests.segser_cli import run_segser

GROUPS = ("experiment", "split", "segmentation", "dataset")  # every shipped option of each

# (overrides, the key the error must name, words of its allowed range)
BAD_VALUES = [
    (["segmentation.hop_seconds=0"], "segmentation.hop_seconds=0 ", "> 0"),
    (["segmentation.hop_seconds=-0.5"], "segmentation.hop_seconds=-0.5 ", "> 0"),
    (["segmentation.window_seconds=0.5"], "segmentation.window_seconds=0.5 ", ">= 0.975 s"),
    (["segmentation.tail=trim"], "segmentation.tail='trim' ", "pad, stop"),
    (["head.units=-1"], "head.units=-1 ", ">= 0"),
    (["split.ratios=[0.5,0.3,0.1]"], "split.ratios=[0.5, 0.3, 0.1] ", "sum to 1"),
    (["split=loso", "split.fold=6"], "split.fold=6 ", "1..5"),
    (["split=loso", "split.fold=0"], "split.fold=0 ", ">= 1"),
    (["split=speaker_folds", "split.fold=5"], "split.fold=5 ", "1..4"),
    (
        ["+dataset.reader.label_map.fru=frustrated"],
        "label_map maps 'fru' to 'frustrated'",
        "allowed values are the classes",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "allowed"), BAD_VALUES)
def test_bad_value_names_key_and_range(overrides: list[str], key: str, allowed: str) -> None:
    with pytest.raises(SegserError) as refused:
        check_config(composed("train", ["experiment=demo", *overrides]))
    assert key in str(refused.value) and allowed in str(refused.value)
    assert "\n" not in str(refused.value)


def test_window_bound_follows_the_feature_settings() -> None:
    # 0.96 s of 20 ms frames with a 40 ms window: 48 frames -> 47 x 0.02 + 0.04 = 0.98 s.
    overrides = ["features.stft_hop_seconds=0.02", "features.stft_window_seconds=0.04"]
    check_config(composed("train", [*overrides, "segmentation.window_seconds=0.98"]))
    with pytest.raises(SegserError, match=r"allowed >= 0\.98 s, one patch \(48 frames"):
        check_config(composed("train", [*overrides, "segmentation.window_seconds=0.97"]))


@pytest.mark.parametrize(
    "overrides",
    [[]]
    + [[f"{group}={option}"] for group in GROUPS for option in options(group)]
    + [["backbone=baseline"], ["head=logits"]],
)
def test_shipped_configs_pass(overrides: list[str]) -> None:
    check_config(composed("train", overrides))


def test_evaluate_config_passes() -> None:
    check_config(composed("evaluate", ["ckpt=best.ckpt"]))


def _refused_by_the_cli(tmp_path: Path, cases: list[int]) -> None:
    """Each bad value through `python -m segser.train` (in parallel): one line, no work done."""

    def run(case: int) -> tuple:
        overrides, key, _ = BAD_VALUES[case]
        where = tmp_path / str(case)
        return (
            where,
            key,
            run_segser("segser.train", "experiment=demo", *overrides, tmp_path=where, timeout=300),
        )

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(run, cases))
    for where, key, result in results:
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
        assert result.stderr.startswith("error: ") and key in result.stderr
        assert not (where / "data").exists()  # no demo corpus written, no cache built


def test_the_cli_refuses_a_window_shorter_than_a_patch_before_any_work(tmp_path: Path) -> None:
    _refused_by_the_cli(tmp_path, [2])  # today this dies with a traceback in the cache build


@pytest.mark.slow
def test_the_cli_refuses_each_bad_value_in_one_line_before_any_work(tmp_path: Path) -> None:
    _refused_by_the_cli(tmp_path, list(range(len(BAD_VALUES))))


# (base overrides, key, values at and inside both ends that pass, values just outside refused)
RANGES = [
    ([], "segmentation.hop_seconds", [0.001, 0.5, 4.0], [0, -0.001, float("inf"), True]),
    ([], "segmentation.tail", ["pad", "stop"], ["trim", "", None]),
    ([], "segmentation.window_seconds", [0.975, 1.0], [0.974, 0.5, float("nan")]),
    ([], "head.units", [0, 1, 200], [-1, 1.5, True]),
    ([], "head.input_norm", [True, False], [1, "yes"]),
    ([], "head.layer_sum", [True, False], [0, "no"]),
    ([], "head.dropout", [0, 0.0, 0.999], [1, 1.0, -0.001]),
    (["backbone=baseline"], "backbone.net.units", [1, 200], [0, -1, 2.5]),
    (["backbone=baseline"], "backbone.net.num_layers", [1, 3], [0, True]),
    (["backbone=baseline"], "backbone.net.dropout", [0, 0.999], [1, -0.1]),
    (
        ["backbone=yamnet"],
        "backbone.net.embedding_layers",
        [[0], [13], list(range(14)), [6, 7, 8, 9, 10, 11]],
        [[-1], [14], [], [6, 14], [True], 13],
    ),
    (  # hidden states: 0 = the transformer's input, 12 = the last layer's output
        ["backbone=wavlm_base_plus"],
        "backbone.net.embedding_layers",
        [[0], [12], list(range(13)), None],
        [[-1], [13], [], [True]],
    ),
    (  # Whisper tiny.en's layer outputs: 0 = convolutions, 1-4 = blocks, 5 = final layer norm
        ["backbone=whisper_tiny_en"],
        "backbone.net.embedding_layers",
        [[0], [5], list(range(6)), None],
        [[-1], [6], [], [True], "5"],
    ),
    ([], "backbone.lr", [None, 1e-9, 1.0], [0, -1e-6]),
    ([], "optimizer.lr", [1e-9, 1e-3], [0, -1e-3, None]),
    ([], "data.batch_size", [1, 32], [0, -1, 1.0]),
    ([], "data.num_workers", [0, 4], [-1, 0.5]),
    ([], "data.on_bad_clip", ["fail", "skip"], ["ignore", None]),
    (["split=loso"], "split.val_fraction", [0.001, 0.5, 0.999], [0, 1, -0.1]),
    (["split=loso"], "split.fold", [1, 3, 5], [0, 6, -1]),
    (["split=speaker_folds"], "split.fold", [1, 4], [0, 5]),
    (["split=speaker"], "split.val_speakers", [1, 3], [0, -1, 1.5]),
    (["clip_pooling=attention"], "clip_pooling.folds", [2, 5], [1, 0, 2.5]),
    (["split=speaker_folds", "split.num_folds=6"], "split.fold", [1, 6], [0, 7]),
    (["split=loso", "dataset.num_sessions=3"], "split.fold", [1, 3], [0, 4]),
    (
        [],
        "split.ratios",
        [[0.8, 0.1, 0.1], [0.98, 0.01, 0.01], [0.8, 0.1, 0.1000005]],
        [[0.9, 0.1, 0.0], [1.0, 0.05, -0.05], [0.8, 0.2], [0.8, 0.1, 0.1001], [0.8, 0.1, 0.0999]],
    ),
    ([], "monitor.mode", ["min", "max"], ["maximum", None]),
    ([], "trainer.max_epochs", [-1, 1, 500], [0, -2, 1.5]),
    ([], "classes", [["a", "b"], ["angry", "happy", "sad", "neutral"]], [["a"], ["a", "a"]]),
]


@cache
def _base(overrides: tuple[str, ...]) -> DictConfig:
    return composed("train", ["experiment=demo", *overrides])


def _with(overrides: list[str], key: str, value) -> DictConfig:
    cfg = copy.deepcopy(_base(tuple(overrides)))
    OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    if key == "classes":  # the demo's label map names the four classes
        OmegaConf.update(cfg, "dataset.reader.label_map", None, force_add=True)
    return cfg


@pytest.mark.parametrize(
    ("overrides", "key", "good", "bad"), RANGES, ids=[f"{r[1]}-{'-'.join(r[0])}" for r in RANGES]
)
def test_both_ends_of_every_range(overrides: list[str], key: str, good: list, bad: list) -> None:
    """Each end that belongs to the range passes; the value just past it is named and refused."""
    for value in good:
        check_config(_with(overrides, key, value))
    for value in bad:
        with pytest.raises(SegserError) as refused:
            check_config(_with(overrides, key, value))
        message = str(refused.value)
        assert key in message and "\n" not in message, (value, message)


class RefusingBackbone(Backbone):
    """A backbone of the user's own: it checks its own net config (a `width` of at least 8)."""

    @classmethod
    def check_net_config(cls, net) -> None:
        if net.get("width", 8) < 8:
            raise SegserError(f"backbone.net.width={net['width']} is out of range: allowed >= 8")

    @classmethod
    def min_samples(cls, net) -> int:
        return 32000  # 2 s at 16 kHz


def test_the_check_asks_the_backbone_class_named_by_its_target() -> None:
    """config_checks knows no backbone: it asks the class `backbone.net._target_` names."""
    target = f"{__name__}.RefusingBackbone"
    base = ["experiment=demo", f"backbone.net._target_={target}", "+backbone.net.width=8"]
    base += ["segmentation.window_seconds=2.0"]
    check_config(composed("train", base))
    with pytest.raises(SegserError, match=r"^backbone.net.width=4 is out of range: allowed >= 8$"):
        check_config(composed("train", [*base, "backbone.net.width=4"]))
    with pytest.raises(SegserError, match=r"window_seconds=1.5 is out of range: allowed >= 2 s"):
        check_config(composed("train", [*base, "segmentation.window_seconds=1.5"]))
