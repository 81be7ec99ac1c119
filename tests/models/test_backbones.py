"""One backbone interface: each conf/backbone option builds a Backbone with its declared embedding
size, picks the features its weights need, and a contradicting features override is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segser.errors import SegserError
from segser.models.backbone import Backbone
from segser.models.factory import build_classifier
from segser.setup.components import model_config
from segser.setup.entry import CONF_DIR
from tests.hydra_app import composed
from tests.ssl_tiny import SSL_BACKBONES, tiny_override

BACKBONES = sorted(p.stem for p in (Path(CONF_DIR) / "backbone").glob("*.yaml"))


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_embeds_a_patch_at_its_declared_size(name: str) -> None:
    # speech transformers: a small network of the bundle's layout (full sizes: tests/models/
    # test_ssl.py), fed a 1 s waveform segment instead of a patch
    small = [tiny_override(SSL_BACKBONES[name])] if name in SSL_BACKBONES else []
    model = build_classifier(model_config(composed("train", [f"backbone={name}", *small])), False)
    assert isinstance(model.backbone, Backbone)
    with torch.no_grad():
        inputs = torch.randn(2, *getattr(model.backbone, "input_shape", (1, 96, 64)))
        embedding = model.backbone.eval()(inputs)
    assert embedding.shape == (2, model.backbone.embedding_dim)


def test_yamnet_selects_its_own_log_offset() -> None:
    assert composed("train", []).features.log_offset == 0.01  # VGGish, the paper's default
    cfg = composed("train", ["backbone=yamnet"])
    assert cfg.features.log_offset == 0.001  # Google's YAMNet frontend, no second override
    assert cfg.features.num_mel_bins == 64 and cfg.features.mel_max_hz == 7500.0
    model = build_classifier(model_config(cfg))  # the packaged weights, offline
    assert model.backbone.layers[0].conv.weight.abs().sum() > 0


@pytest.mark.parametrize(
    ("overrides", "offset", "needed"),
    [
        (["backbone=yamnet", "features.log_offset=0.01"], "0.01", "0.001"),
        (["backbone=yamnet", "features=vggish"], "0.01", "0.001"),
        (["backbone=vggish", "features=yamnet"], "0.001", "0.01"),
    ],
)
def test_contradicting_features_are_one_clear_error(
    overrides: list[str], offset: str, needed: str
) -> None:
    cfg = composed("train", [*overrides, "backbone.weights=none"])
    with pytest.raises(SegserError) as err:
        build_classifier(model_config(cfg))
    message = str(err.value)
    assert f"features.log_offset={offset}" in message and f"log_offset={needed}" in message
    assert overrides[0] in message and "\n" not in message


@pytest.mark.parametrize("overrides", [["backbone=yamnet", "features.log_offset=0.01"],
                                       ["backbone=vggish", "features=yamnet"]])  # fmt: skip
def test_contradicting_features_are_refused_by_the_config_check(overrides: list[str]) -> None:
    """Before the corpus scan and cache build, as every other config check."""
    from segser.setup.config_checks import check_config

    with pytest.raises(SegserError, match=r"features\.log_offset=.* contradicts backbone="):
        check_config(composed("train", overrides))
    check_config(composed("train", overrides[:1]))  # the backbone's own features pass
