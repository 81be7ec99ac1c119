"""Crafted checkpoints: none runs code, reads the environment, or ends in a traceback."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from segser.errors import SegserError
from segser.evaluate import evaluate
from segser.models.checkpoint import (
    RUN_KEY,
    allowed_target,
    literal,
    load_trained,
)
from segser.models.factory import build_classifier
from segser.predict import main as predict_main
from segser.setup.components import model_config
from tests.hydra_app import composed
from tests.segser_cli import run_segser


@pytest.fixture(scope="module")
def valid() -> dict[str, Any]:
    """A well-formed checkpoint of the demo's model, built without training."""
    cfg = composed("train", ["experiment=demo"])
    config = model_config(cfg)
    model = build_classifier(config)
    return {
        "epoch": 0,
        "state_dict": model.state_dict(),
        "hyper_parameters": {"model_config": config},
        RUN_KEY: {
            "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
            "split": {"name": "random", "seed": 0},
            "clips": {"train": {"a": "sad"}, "val": {"b": "sad"}, "test": {"c": "sad"}},
        },
    }


def write_text_call(marker: Path, target: str = "pathlib.Path.write_text") -> dict[str, Any]:
    """A config that, instantiated, writes `marker` (as the issue's crafted checkpoint did)."""
    return {
        "_target_": target,
        "self": {"_target_": "pathlib.Path", "_args_": [str(marker)]},
        "data": "written by a checkpoint",
    }


class WritesOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "written by unpickling"))


def backbone(marker: Path, target: str) -> Callable[[dict], None]:
    def edit(checkpoint: dict) -> None:
        checkpoint["hyper_parameters"]["model_config"]["backbone"]["net"] = write_text_call(
            marker, target
        )

    return edit


def set_in(path: str, value: Any) -> Callable[[dict], None]:
    def edit(checkpoint: dict) -> None:
        *parents, last = path.split("/")
        node = checkpoint
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def drop(path: str) -> Callable[[dict], None]:
    def edit(checkpoint: dict) -> None:
        *parents, last = path.split("/")
        node = checkpoint
        for key in parents:
            node = node[key]
        del node[last]

    return edit


def wrong_shape(checkpoint: dict) -> None:
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][name] = torch.zeros(3, 5)


MC = "hyper_parameters/model_config"
CASES: dict[str, tuple[Callable[[dict, Path], Any], str]] = {
    "write_text target": (lambda c, m: backbone(m, "pathlib.Path.write_text")(c), "code to run"),
    "write_text reached through a segser module": (
        lambda c, m: backbone(m, "segser.models.checkpoint.Path.write_text")(c),
        "code to run",
    ),
    "target from an interpolation": (
        lambda c, m: backbone(m, "${oc.env:SEGSER_TEST_TARGET}")(c),
        "code to run",
    ),
    "head target": (
        lambda c, m: set_in(f"{MC}/head", write_text_call(m))(c),
        "code to run",
    ),
    "optimizer target": (
        lambda c, m: set_in(f"{MC}/optimizer", write_text_call(m))(c),
        "code to run",
    ),
    "a class imported into a segser.models module": (
        lambda c, m: set_in(
            f"{MC}/backbone/net",
            {"_target_": "segser.models.checkpoint.L.Trainer", "default_root_dir": str(m)},
        )(c),
        "code to run",
    ),
    "dataset reader target": (
        lambda c, m: set_in(f"{RUN_KEY}/dataset/reader", write_text_call(m))(c),
        "code to run",
    ),
    "no hyper_parameters": (lambda c, m: drop("hyper_parameters")(c), "lacks hyper_parameters"),
    "model_config not a dict": (lambda c, m: set_in(MC, "oops")(c), "lacks model_config"),
    "no state_dict": (lambda c, m: drop("state_dict")(c), "lacks state_dict"),
    "classes not a list": (lambda c, m: set_in(f"{MC}/classes", 4)(c), "lacks classes"),
    "no features": (lambda c, m: drop(f"{MC}/features")(c), "lacks features"),
    "features of the wrong type": (
        lambda c, m: set_in(f"{MC}/features/sample_rate_hz", "fast")(c),
        "cannot rebuild",
    ),
    "unknown feature key": (lambda c, m: set_in(f"{MC}/features/extra", 1)(c), "cannot rebuild"),
    "a tensor where settings belong": (
        lambda c, m: set_in(f"{MC}/segmentation/hop_seconds", torch.ones(2))(c),
        "not plain data",
    ),
    "weights of the wrong shape": (lambda c, m: wrong_shape(c), "cannot rebuild"),
    "head units that do not fit the weights": (
        lambda c, m: set_in(f"{MC}/head/units", 7)(c),
        "cannot rebuild",
    ),
    "split clips malformed": (
        lambda c, m: set_in(f"{RUN_KEY}/clips/test", ["c"])(c),
        "lacks test",
    ),
}


@pytest.fixture
def crafted(valid, tmp_path: Path, monkeypatch) -> Callable[[str], tuple[Path, Path]]:
    """(checkpoint, marker): the named fault applied to a copy of the valid checkpoint."""
    marker = tmp_path / "pwned.txt"
    monkeypatch.setenv("SEGSER_TEST_TARGET", "pathlib.Path.write_text")

    def make(case: str) -> tuple[Path, Path]:
        checkpoint = copy.deepcopy(valid)
        CASES[case][0](checkpoint, marker)
        path = tmp_path / "crafted.ckpt"
        torch.save(checkpoint, path)
        return path, marker

    return make


def assert_one_line(error: BaseException, *needles: str) -> None:
    text = str(error)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_trained_refuses_in_one_line(case: str, crafted) -> None:
    path, marker = crafted(case)
    with pytest.raises(SegserError) as error:
        load_trained(path)
    assert_one_line(error.value, str(path), CASES[case][1])
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_predict_refuses_in_one_line(case: str, crafted, tmp_path: Path, capsys) -> None:
    path, marker = crafted(case)
    assert predict_main([str(path), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and CASES[case][1] in errors[0]
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_evaluate_refuses_in_one_line(case: str, crafted, tmp_path: Path) -> None:
    path, marker = crafted(case)
    cfg = composed("evaluate", [f"ckpt={path}"])
    with pytest.raises(SegserError) as error:
        evaluate(cfg, tmp_path / "eval")
    assert_one_line(error.value, CASES[case][1])
    assert not marker.exists()


def test_the_valid_checkpoint_loads(valid, tmp_path: Path) -> None:
    """The crafted cases above fail because of their fault, not because of the base file."""
    torch.save(valid, tmp_path / "valid.ckpt")
    trained = load_trained(tmp_path / "valid.ckpt")
    assert trained.classes == ["angry", "happy", "sad", "neutral"]
    assert trained.model.hparams["model_config"] == valid["hyper_parameters"]["model_config"]
    assert trained.run is not None and trained.run.clips["test"] == {"c": "sad"}


def unreadable_files(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "pwned.txt"
    files = {
        "bad bytes": tmp_path / "bytes.ckpt",
        "pickled code": tmp_path / "code.ckpt",
        "not a dict": tmp_path / "list.ckpt",
        "truncated": tmp_path / "truncated.ckpt",
    }
    files["bad bytes"].write_bytes(b"\x80\x04not a checkpoint at all" * 10)
    torch.save({"state_dict": {}, "x": WritesOnUnpickle(marker)}, files["pickled code"])
    torch.save([1, 2, 3], files["not a dict"])
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, files["truncated"])
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:300])
    return files


def test_unreadable_files_are_one_line_and_never_unpickle_code(tmp_path: Path, capsys) -> None:
    for name, path in unreadable_files(tmp_path).items():
        with pytest.raises(SegserError) as error:
            load_trained(path)
        assert_one_line(error.value, str(path)), name
        assert predict_main([str(path), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
        cfg = composed("evaluate", [f"ckpt={path}"])
        with pytest.raises(SegserError):
            evaluate(cfg, tmp_path / "eval")
    assert not (tmp_path / "pwned.txt").exists()


def test_allow_list() -> None:
    assert allowed_target("segser.models.vggish.VGGish")
    assert allowed_target("segser.models.heads.ClassificationHead")
    assert allowed_target("segser.data.corpora.demo.read_demo_corpus")
    assert allowed_target("torch.optim.Adam") and allowed_target("torch.optim.SGD")
    for target in [
        "pathlib.Path.write_text",
        "os.system",
        "segser.models.checkpoint.Path.write_text",  # an import inside a segser module
        "segser.models.factory.instantiate",
        "segser.models.weights.load_vggish",  # a segser function, but not a model class
        "segser.data.cache.patches.build_or_open_cache",  # not a corpus reader
        "torch.optim.Adam.step",
        "torch.optim.lr_scheduler.LambdaLR",  # not an optimizer
        "segser.models.vggish.torch.save",
        "${oc.env:X}",
        42,
    ]:
        assert not allowed_target(target), target


@pytest.mark.parametrize(
    "text", ["${oc.env:PATH}", "a\\${x}", "\\\\${x}", "${a:${b}}", "plain", "x\\", "$${x}", "}${"]
)
def test_literal_reads_back_as_itself_through_omegaconf(text: str) -> None:
    node = OmegaConf.create({"v": literal(text), "nested": [literal({"k": text})]})
    assert OmegaConf.to_container(node, resolve=True) == {"v": text, "nested": [{"k": text}]}


@pytest.mark.slow  # two subprocesses: ~40 s on 2 busy cores
def test_cli_entry_points_refuse_a_hostile_checkpoint_in_one_line(crafted, tmp_path) -> None:
    path, marker = crafted("write_text target")
    for module, args in [
        ("segser.evaluate", [f"ckpt={path}", f"hydra.run.dir={tmp_path / 'eval'}"]),
        ("segser.predict", [str(path), str(tmp_path), "--out", str(tmp_path / "out")]),
    ]:
        result = run_segser(module, *args, tmp_path=tmp_path, timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr + result.stdout
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "code to run" in errors[0], result.stderr[-2000:]
    assert not marker.exists()


# Names that reach an allowed kind of object (a class under segser.models, a read_* function
# under segser.data) through another module's import: only where it is defined may name it.
REACHED_THROUGH_AN_IMPORT = [
    "segser.models.checkpoint.Path",  # pathlib.Path, imported into checkpoint.py
    "segser.models.checkpoint.L.Trainer",  # lightning's Trainer, through `import lightning as L`
    "segser.models.factory.SegmentEmotionClassifier",  # defined in segser.models.module
    "segser.models.vggish.Backbone",  # defined in segser.models.backbone
    "segser.models.yamnet.SegserError",  # a class, but segser.errors'
    "segser.models.yamnet.nn.Linear",
    "segser.data.corpora.demo.read_iemocap",  # a corpus reader, defined in corpora.iemocap
    "segser.data.corpora.iemocap.read_clip",  # imported from corpora.clips
]


@pytest.mark.parametrize("target", REACHED_THROUGH_AN_IMPORT)
def test_allow_list_takes_only_the_name_where_an_object_is_defined(target: str) -> None:
    from hydra.utils import get_object

    found = get_object(target)  # the name does reach the object...
    assert not allowed_target(target), target  # ...but not under its own name
    assert allowed_target(f"{found.__module__}.{found.__qualname__}") == (
        found.__module__.startswith(("segser.models.", "segser.data."))
    )


def older_yamnet_config() -> dict[str, Any]:
    """The demo's model config as a segser from before embedding_layers, head.input_norm,
    head.layer_sum and segmentation.tail wrote it: none of those keys."""
    config = model_config(composed("train", ["experiment=demo"]))
    config["backbone"]["net"] = {"_target_": "segser.models.yamnet.YAMNet"}
    config["head"] = {
        k: v for k, v in config["head"].items() if k not in ("input_norm", "layer_sum")
    }
    del config["segmentation"]["tail"]
    return config


def test_a_checkpoint_from_before_the_newer_options_loads_with_their_old_behaviour(
    tmp_path: Path,
) -> None:
    """YAMNet's own embedding (layer 13), a head without standardizer or layer sum, and the
    `pad` tail rule: what such a checkpoint was trained with."""
    config = older_yamnet_config()
    torch.manual_seed(0)
    original = build_classifier(copy.deepcopy(config), load_pretrained=False).eval()
    path = tmp_path / "older.ckpt"
    torch.save(
        {
            "epoch": 2,
            "state_dict": original.state_dict(),
            "hyper_parameters": {"model_config": config},
        },
        path,
    )
    trained = load_trained(path)
    assert trained.segmentation.tail == "pad"
    assert trained.model.backbone.embedding_layers == (13,)
    assert trained.model.head.standardizer is None
    assert [type(m).__name__ for m in trained.model.head.layers] == [
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert trained.run is None and trained.epochs_trained == 3
    patch = torch.randn(3, 1, 96, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(trained.model(patch), original(patch))


def test_an_older_vggish_config_keeps_the_final_relu() -> None:
    """torchvggish's ReLU after the 128-d layer: what every run before the option trained with."""
    config = model_config(composed("train", ["experiment=demo", "backbone=vggish"]))
    config["backbone"]["net"] = {"_target_": "segser.models.vggish.VGGish"}
    model = build_classifier(config, load_pretrained=False)
    assert isinstance(model.backbone.embeddings[-1], torch.nn.ReLU)
