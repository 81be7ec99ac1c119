"""Check a composed config before any work: a value out of range fails in one line at start.

Runs before the corpus scan and the cache build, so a bad value costs seconds, not a build.
Hydra's structured-config schemas would check types only, and their errors span several
lines; ranges and cross-key rules (window vs patch, ratios summing to 1) need code anyway.
Keys a config does not have are skipped, so the same check serves train and evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from segser.data.features import feature_path, feature_settings
from segser.data.signal.segmentation import TAILS
from segser.data.splits import check_ratios
from segser.errors import SegserError
from segser.models.backbone import Backbone, check_features

_ABSENT = object()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """One key's allowed range, in words for the error and as a test."""

    key: str
    allowed: str
    ok: Callable[[Any], bool]


RULES = (
    Rule("segmentation.hop_seconds", "a number of seconds > 0", lambda v: _number(v) and v > 0),
    Rule("segmentation.tail", f"one of {', '.join(TAILS)}", lambda v: v in TAILS),
    Rule("head.units", "an integer >= 0 (0: logits layer only)", lambda v: _integer(v) and v >= 0),
    Rule("head.input_norm", "true or false", lambda v: isinstance(v, bool)),
    Rule("head.layer_sum", "true or false", lambda v: isinstance(v, bool)),
    Rule("head.dropout", "a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    Rule("backbone.net.units", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    Rule("backbone.net.num_layers", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    Rule("backbone.net.dropout", "a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    Rule("backbone.lr", "a number > 0, or null", lambda v: v is None or (_number(v) and v > 0)),
    Rule("optimizer.lr", "a number > 0", lambda v: _number(v) and v > 0),
    Rule("data.batch_size", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    Rule("data.num_workers", "an integer >= 0", lambda v: _integer(v) and v >= 0),
    Rule("data.on_bad_clip", "fail or skip", lambda v: v in ("fail", "skip")),
    Rule("split.val_fraction", "a number in (0, 1)", lambda v: _number(v) and 0 < v < 1),
    Rule("split.fold", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    Rule("split.val_speakers", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    Rule("clip_pooling.folds", "an integer >= 2", lambda v: _integer(v) and v >= 2),
    Rule("monitor.mode", "min or max", lambda v: v in ("min", "max")),
    Rule(
        "trainer.max_epochs",
        "an integer >= 1, or -1 for no limit",
        lambda v: _integer(v) and (v >= 1 or v == -1),
    ),
)


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _out_of_range(key: str, value: Any, allowed: str) -> SegserError:
    return SegserError(f"{key}={value!r} is out of range: allowed {allowed}")


def _check_features_and_window(cfg: DictConfig) -> None:
    features = _value(cfg, "features")
    if features is _ABSENT:
        return
    try:
        settings = feature_settings(features)
        if not feature_path(settings).masks:  # raw samples: any window of at least one sample
            return
        patch_samples = settings.patch_samples
        if patch_samples < 1 or settings.stft_hop_samples < 1 or settings.sample_rate_hz < 1:
            raise ValueError("the STFT window, hop and sample rate must be positive")
    except (TypeError, ValueError, ZeroDivisionError) as error:
        message = f"features: {error}. Fix conf/features or the features.* overrides"
        raise SegserError(message) from None
    window = _value(cfg, "segmentation.window_seconds")
    if window is _ABSENT:
        return
    rate = settings.sample_rate_hz
    if not _number(window) or round(window * rate) < patch_samples:
        tail = settings.stft_window_seconds - settings.stft_hop_seconds
        raise _out_of_range(
            "segmentation.window_seconds",
            window,
            f">= {patch_samples / rate:g} s, one patch ({settings.frames_per_patch} frames x "
            f"{settings.stft_hop_seconds:g} s hop + {tail:g} s STFT window tail)",
        )


def _check_classes_and_label_map(cfg: DictConfig) -> None:
    classes = _value(cfg, "classes")
    if classes is _ABSENT:
        return
    if not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes):
        raise _out_of_range("classes", classes, "a list of at least 2 distinct class names")
    label_map = _value(cfg, "dataset.reader.label_map")
    if not isinstance(label_map, dict):
        return
    for code, label in label_map.items():
        if label not in classes:
            raise SegserError(
                f"dataset.reader.label_map maps {code!r} to {label!r}, which is not among "
                f"classes {classes}: allowed values are the classes. Add it to classes or "
                "drop it from the map"
            )


def _check_split(cfg: DictConfig) -> None:
    ratios = _value(cfg, "split.ratios")
    if ratios is not _ABSENT:
        check_ratios(ratios)
    fold = _value(cfg, "split.fold")
    folds, per = _value(cfg, "split.num_folds"), ""  # a split that declares its fold count
    # LOSO: one fold per session
    if not _integer(folds) and str(_value(cfg, "split._target_")).endswith(".loso_split"):
        sessions = _value(cfg, "dataset.reader.sessions")
        folds = len(sessions) if isinstance(sessions, list) else _value(cfg, "dataset.num_sessions")
        per = ", one fold per session"
    if _integer(fold) and _integer(folds) and not 1 <= fold <= folds:
        raise _out_of_range("split.fold", fold, f"1..{folds}{per}")


def _backbone_class(cfg: DictConfig) -> type[Backbone] | None:
    target = _value(cfg, "backbone.net._target_")
    if not isinstance(target, str):
        return None
    try:
        backbone = get_class(target)
    except Exception:  # a bad target is named in one line when the model is built
        return None
    return backbone if isinstance(backbone, type) and issubclass(backbone, Backbone) else None


def _check_backbone_net(cfg: DictConfig) -> None:
    """The window against the backbone's shortest input (a speech transformer's or Whisper's
    receptive field), then `backbone.net` as the backbone class checks it (its layers)."""
    backbone, net = _backbone_class(cfg), _value(cfg, "backbone.net")
    if backbone is None or not isinstance(net, dict):
        return
    shortest = backbone.min_samples(net)
    window = _value(cfg, "segmentation.window_seconds")
    rate = _value(cfg, "features.sample_rate_hz")
    if _number(window) and _integer(rate) and round(window * rate) < shortest:
        raise _out_of_range(
            "segmentation.window_seconds",
            window,
            f">= {shortest / rate:g} s, the convolutional encoder's receptive field",
        )
    backbone.check_net_config(net)


def _check_backbone_features(cfg: DictConfig) -> None:
    """The backbone's own features (YAMNet's log offset, a speech transformer's waveform) before
    the corpus scan, not after."""
    backbone = _backbone_class(cfg)
    if backbone is not None:
        name = _value(cfg, "backbone.name")
        features = _value(cfg, "features")
        check_features(
            backbone,
            features if isinstance(features, dict) else {},
            name if isinstance(name, str) else backbone.__name__,
        )


def _check_augment_masks(cfg: DictConfig) -> None:
    """SpecAugment masks need a spectrogram in the cache: refused on raw-sample paths at start,
    not after the embedding pass."""
    masks, features = _value(cfg, "augment.masks"), _value(cfg, "features")
    passes = _value(cfg, "augment.passes")
    if not masks or not passes or not isinstance(features, dict):
        return
    try:
        path = feature_path(feature_settings(features))
    except (TypeError, ValueError):
        return  # named by _check_features_and_window
    if not path.masks:
        raise SegserError(
            f"augment.masks are SpecAugment masks on log-mel patches, but features.kind="
            f"{path.kind} stores {path.reads}: set augment.masks=null (the waveform "
            "perturbations still apply) or choose a log-mel backbone"
        )


def _check_clip_context(cfg: DictConfig) -> None:
    """Clip context (Whisper: encode a clip once, pool each segment's frames) serves the frozen
    embedding cache, and needs segments that touch or overlap."""
    context = _value(cfg, "backbone.net.context")
    if context is _ABSENT or context == "segment":
        return
    if context != "clip":
        raise _out_of_range("backbone.net.context", context, "segment or clip")
    if _value(cfg, "backbone.freeze") is not True:
        raise SegserError(
            "backbone.net.context=clip encodes each clip once for the frozen embedding cache: "
            "set backbone.freeze=true, or backbone.net.context=segment to fine-tune"
        )
    hop, window = (_value(cfg, f"segmentation.{k}_seconds") for k in ("hop", "window"))
    if _number(hop) and _number(window) and hop > window:
        raise SegserError(
            f"backbone.net.context=clip pools frames of touching or overlapping segments, but "
            f"segmentation.hop_seconds={hop} > window_seconds={window}: use context=segment"
        )


def _check_renamed_keys(cfg: DictConfig) -> None:
    """The speed switches were the top-level `model:` block (train.yaml keeps it, null, so that
    `model.compile=true` still composes): any value set there is refused, naming the new key."""
    old = _value(cfg, "model")
    for key, value in (old if isinstance(old, dict) else {}).items():
        if value is not None:
            shown = str(value).lower() if isinstance(value, bool) else value
            raise SegserError(f"`model.*` is now `speed.*`: use speed.{key}={shown}")


def check_config(cfg: DictConfig) -> None:
    """Raise SegserError (one line naming the key and its allowed range) on the first bad value."""
    _check_renamed_keys(cfg)
    for rule in RULES:
        value = _value(cfg, rule.key)
        if value is not _ABSENT and not rule.ok(value):
            raise _out_of_range(rule.key, value, rule.allowed)
    _check_features_and_window(cfg)
    _check_backbone_features(cfg)
    _check_augment_masks(cfg)
    _check_clip_context(cfg)
    _check_backbone_net(cfg)
    _check_classes_and_label_map(cfg)
    _check_split(cfg)
