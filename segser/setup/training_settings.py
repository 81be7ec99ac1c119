"""How to train depends on what learns: the paper's settings fine-tune, a frozen backbone's head
trains from scratch.

The paper fine-tunes the whole pre-trained network with Adam at lr 1e-6 and patience 50. With a
frozen backbone only a head that starts from random weights learns: at lr 1e-6 it crawls for all
its 1000 epochs (the demo's val loss still falls at epoch 999), at 1e-3 it converges in tens.
`conf/train.yaml`'s `training:` block holds both sets; `optimizer.lr`,
`callbacks.early_stopping.patience` and `trainer.max_epochs` read the one that fits
`backbone.freeze` through the `segser.training_mode` resolver, so an explicit value wins. A
backbone config may replace the fine_tune set (the SSL backbones: a fresh head at 5e-4 beside
the transformer at `backbone.lr`); the set's `note` says where it comes from.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

MODES = {
    "fine_tune": "the backbone is fine-tuned",
    "frozen": "the backbone is frozen, so only a head trained from scratch learns",
}
# Each setting and where the run reads it.
SETTING_KEYS = {
    "lr": "optimizer.lr",
    "patience": "callbacks.early_stopping.patience",
    "max_epochs": "trainer.max_epochs",
}


def training_mode(freeze: Any) -> str:
    """`frozen` or `fine_tune`: which of conf/train.yaml's `training:` sets applies."""
    return "frozen" if bool(freeze) else "fine_tune"


OmegaConf.register_new_resolver("segser.training_mode", training_mode, replace=True)


def training_settings(cfg: DictConfig) -> dict[str, Any]:
    """The settings this run trains with, the preset they came from, and which were set
    explicitly (those differ from the preset; an explicit value always wins)."""
    mode = training_mode(cfg.backbone.get("freeze", False))
    preset = cfg.get("training", {}).get(mode, {})
    used = {name: OmegaConf.select(cfg, key) for name, key in SETTING_KEYS.items()}
    explicit = [SETTING_KEYS[name] for name, value in used.items() if preset.get(name) != value]
    why = MODES[mode] + (f": {preset.note}" if preset.get("note") else "")
    # a fine-tuned backbone's own rate (backbone.lr; None: optimizer.lr, the head's)
    backbone_lr = cfg.backbone.get("lr") if mode == "fine_tune" else None
    return {
        "mode": mode,
        "why": why,
        **used,
        "backbone_lr": backbone_lr,
        "set_explicitly": explicit,
    }


def describe(settings: dict[str, Any]) -> str:
    """One log line: the settings, the preset and why, and any explicit values."""
    values = [f"{name} {settings[name]:g}" for name in SETTING_KEYS]
    if settings.get("backbone_lr") is not None:  # two rates: say which is which
        values[0] = f"lr {settings['lr']:g} (head), backbone lr {settings['backbone_lr']:g}"
    line = f"training settings '{settings['mode']}' ({settings['why']}): {', '.join(values)}"
    if settings["set_explicitly"]:
        line += f"; set explicitly: {', '.join(settings['set_explicitly'])}"
    return line
