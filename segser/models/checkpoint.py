"""Read a segser checkpoint as data: nothing in the file chooses code to run or gets resolved.

A .ckpt is loaded with `weights_only=True` (no pickled code). Every `_target_` it names must be
one of segser's own model classes or corpus readers, or a torch optimizer (the allow-list), and
every string it holds is escaped before it meets OmegaConf, so "${oc.env:...}" stays text.
Any fault of the file (bad pickle, missing keys, wrong types or shapes) is one SegserError line.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_object

from segser.data.features import FeatureSettings, feature_settings
from segser.data.signal.segmentation import SegmentationSettings, segmentation_settings
from segser.errors import SegserError
from segser.models.factory import build_classifier
from segser.models.module import SegmentEmotionClassifier

# What a checkpoint's model_config holds (components.model_config writes it) and each one's type.
MODEL_KEYS: dict[str, type] = {
    "backbone": dict,
    "head": dict,
    "optimizer": dict,
    "classes": list,
    "segmentation": dict,
    "features": dict,
}


def current_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored model_config under today's names (issue 27: backbone.net.params is architecture)."""
    backbone = config.get("backbone")
    net = backbone.get("net") if isinstance(backbone, dict) else None
    if not isinstance(net, dict) or "params" not in net:
        return config
    params = net["params"]
    net = {key: value for key, value in net.items() if key != "params"}
    net["architecture"] = net.get("architecture") or params
    return {**config, "backbone": {**backbone, "net": net}}


RUN_KEY = "segser_run"  # the checkpoint entry that records the run's corpus and split
# data.speaker_norm=true: the training statistics (segser.data.speaker_norm), float32 tensors
SPEAKER_NORM_KEY = "segser_speaker_norm"
SETS = ("train", "val", "test")
FIX = "Pass a .ckpt written by `python -m segser.train` (RUN_DIR/checkpoints/best.ckpt)."
_INTERPOLATION = re.compile(r"(\\*)\$\{")


@dataclass(frozen=True)
class RunRecord:
    """What a run trained and was tested on: its dataset settings and split, by clip id."""

    dataset: dict[str, Any]  # the resolved dataset config, as plain data
    split: dict[str, Any]  # the split's description (name, seed, ratios, fold ...)
    clips: dict[str, dict[str, str]]  # "train" / "val" / "test" -> clip id -> label


@dataclass(frozen=True)
class SpeakerNorm:
    """A data.speaker_norm=true run's stand-in statistics for a speaker without enough audio:
    the training speakers' mean of means and root mean variance, per embedding dimension."""

    mean: torch.Tensor  # [D], float32
    std: torch.Tensor  # [D], float32, > 0
    speakers: list[str]  # the training speakers they summarise


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's model with the input pipeline it was trained on."""

    model: SegmentEmotionClassifier
    model_config: dict[str, Any]
    classes: list[str]
    segmentation: SegmentationSettings
    features: FeatureSettings
    epochs_trained: int
    run: RunRecord | None
    speaker_norm: SpeakerNorm | None = None  # set for a data.speaker_norm=true run


class RunRecorder(L.Callback):
    """Writes the run's dataset settings and split (clip ids and labels) into every checkpoint."""

    def __init__(self, dataset: dict[str, Any]) -> None:
        self.dataset = dataset

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        datamodule = trainer.datamodule
        split, clips = datamodule.split, datamodule.clips
        checkpoint[RUN_KEY] = {
            "dataset": self.dataset,
            "split": dict(split.description),
            "speaker_norm": bool(getattr(datamodule, "speaker_norm", False)),
            "clips": {
                name: {clips[i].clip_id: clips[i].label for i in getattr(split, name)}
                for name in SETS
            },
        }
        statistics = getattr(datamodule, "training_statistics", None)
        if checkpoint[RUN_KEY]["speaker_norm"] and statistics is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32) for v in statistics)
            speakers = sorted({clips[i].speaker for i in split.train})
            checkpoint[SPEAKER_NORM_KEY] = {"mean": mean, "std": std, "speakers": speakers}


def literal(value: Any) -> Any:
    """A copy in which OmegaConf reads every string as itself (`${` escaped), never resolved."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {key: literal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [literal(item) for item in value]
    return value


def plain_data(value: Any, where: str) -> Any:
    """Check that `value` is JSON-like data (dicts with str keys, lists, scalars) and return it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SegserError(f"{where} has a key of type {type(key).__name__}. {FIX}")
            plain_data(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            plain_data(item, f"{where}[{i}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise SegserError(f"{where} holds a {type(value).__name__}, not plain data. {FIX}")
    return value


def allowed_target(target: Any) -> bool:
    """segser's own model classes and `read_*` corpus readers, or torch optimizers; nothing else.

    The string must name the object where it is defined, so `segser.models.x.Path.write_text`
    (an import inside a segser module) does not pass; modules outside the list are never imported.
    """
    if not isinstance(target, str) or not target.startswith(
        ("segser.models.", "segser.data.", "torch.optim.")
    ):
        return False
    try:
        found = get_object(target)
    except Exception:
        return False
    module = getattr(found, "__module__", None) or ""
    if target.startswith("torch.optim."):
        return (
            inspect.isclass(found)
            and issubclass(found, torch.optim.Optimizer)
            and module.startswith("torch.optim.")
        )
    if target != f"{module}.{getattr(found, '__qualname__', '')}":
        return False
    if target.startswith("segser.models."):
        return inspect.isclass(found)
    return inspect.isfunction(found) and found.__name__.startswith("read_")


def check_targets(config: Any, where: str) -> None:
    """Refuse, in one line, any `_target_` in `config` that is not on the allow-list."""
    if isinstance(config, dict):
        target = config.get("_target_")
        if target is not None and not allowed_target(target):
            raise SegserError(
                f"{where} names {str(target)[:80]!r} as code to run, which segser does not "
                f"run from a file (allowed: segser's models and corpus readers, torch.optim). {FIX}"
            )
        for key, item in config.items():
            check_targets(item, f"{where}.{key}")
    elif isinstance(config, list):
        for i, item in enumerate(config):
            check_targets(item, f"{where}[{i}]")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents (weights_only), or one line saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise SegserError(f"{path}: checkpoint not found. {FIX}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged, foreign, or holding pickled code
        raise SegserError(
            f"{path}: not a readable segser checkpoint ({type(error).__name__}). {FIX}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise SegserError(f"{path}: not a segser checkpoint (no dictionary inside). {FIX}")
    return checkpoint


def _entry(mapping: Any, key: str, kind: type, where: str) -> Any:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind):
        raise SegserError(f"{where}: the checkpoint lacks {key} (a {kind.__name__}). {FIX}")
    return value


def run_record(checkpoint: dict[str, Any], where: str) -> RunRecord | None:
    """The run's corpus and split as stored by RunRecorder; None for older checkpoints."""
    stored = checkpoint.get(RUN_KEY)
    if stored is None:
        return None
    plain_data(stored, f"{where}: {RUN_KEY}")
    dataset = _entry(stored, "dataset", dict, where)
    clips = _entry(stored, "clips", dict, where)
    for name in SETS:
        ids = _entry(clips, name, dict, f"{where}: {RUN_KEY}.clips")
        if not all(isinstance(label, str) for label in ids.values()):
            raise SegserError(f"{where}: {RUN_KEY}.clips.{name} must map clip ids to labels.")
    check_targets(dataset, f"{where}: {RUN_KEY}.dataset")
    return RunRecord(dataset, _entry(stored, "split", dict, where), clips)


def load_trained(path: str | Path) -> TrainedModel:
    """Rebuild a trained classifier and its input pipeline from a segser checkpoint."""
    where = str(path)
    checkpoint = read_checkpoint(path)
    stored_run = checkpoint.get(RUN_KEY)
    speaker_norm = None
    if isinstance(stored_run, dict) and stored_run.get("speaker_norm") is True:
        speaker_norm = speaker_norm_record(checkpoint, where)
    hyper_parameters = _entry(checkpoint, "hyper_parameters", dict, where)
    stored = _entry(hyper_parameters, "model_config", dict, where)
    config = current_model_config(plain_data(stored, f"{where}: model_config"))
    for key, kind in MODEL_KEYS.items():
        _entry(config, key, kind, where)
    check_targets(config, f"{where}: model_config")
    state_dict = _entry(checkpoint, "state_dict", dict, where)
    try:
        classes = [str(c) for c in config["classes"]]
        segmentation = segmentation_settings(config["segmentation"])
        features = feature_settings(config["features"])
        # The parts that reach instantiate are escaped; the rest (classes) is used as it is.
        escaped = {key: literal(config[key]) for key in ("backbone", "head", "optimizer")}
        model = build_classifier({**config, **escaped}, load_pretrained=False)
        model.hparams["model_config"] = config
        model.load_state_dict(state_dict)
    except Exception as error:  # wrong types, unknown keys or shapes: the file does not fit
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise SegserError(
            f"{where}: cannot rebuild its model ({type(error).__name__}: {first}). {FIX}"
        ) from error
    if speaker_norm is not None and len(speaker_norm.mean) != model.backbone.embedding_dim:
        raise SegserError(
            f"{where}: {SPEAKER_NORM_KEY} has {len(speaker_norm.mean)} numbers for embeddings of "
            f"{model.backbone.embedding_dim}. {FIX}"
        )
    epoch = checkpoint.get("epoch")
    return TrainedModel(
        model=model.eval(),
        model_config=config,
        classes=classes,
        segmentation=segmentation,
        features=features,
        epochs_trained=epoch + 1 if isinstance(epoch, int) else 0,
        run=run_record(checkpoint, where),
        speaker_norm=speaker_norm,
    )


def speaker_norm_record(checkpoint: dict[str, Any], where: str) -> SpeakerNorm:
    """The stored training statistics of a data.speaker_norm=true run, checked."""
    stored = checkpoint.get(SPEAKER_NORM_KEY)
    mean = stored.get("mean") if isinstance(stored, dict) else None
    std = stored.get("std") if isinstance(stored, dict) else None
    speakers = stored.get("speakers") if isinstance(stored, dict) else None
    if not (
        isinstance(mean, torch.Tensor)
        and isinstance(std, torch.Tensor)
        and mean.dim() == 1
        and mean.shape == std.shape
        and bool(torch.isfinite(mean).all())
        and bool((std > 0).all() and torch.isfinite(std).all())
        and isinstance(speakers, list)
        and all(isinstance(s, str) for s in speakers)
    ):
        raise SegserError(
            f"{where}: trained with data.speaker_norm=true but lacks valid {SPEAKER_NORM_KEY} "
            "(training statistics: 1-D finite mean, positive std, speaker list); an older "
            "segser wrote it. Retrain it with this segser"
        )
    return SpeakerNorm(mean.float(), std.float(), list(speakers))


def load_classifier(path: str | Path) -> SegmentEmotionClassifier:
    """The trained classifier of a segser checkpoint, in eval mode."""
    return load_trained(path).model
