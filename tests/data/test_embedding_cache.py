"""Frozen-backbone embedding cache: rows match the backbone, reuse, rebuilds, resume after kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segser.data.cache.embeddings import build_or_open_embeddings
from segser.data.cache.patches import PatchCache, build_or_open_cache
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings
from segser.models.backbone import Backbone
from tests.segser_cli import child_pythonpath

REPO = Path(__file__).resolve().parents[2]


class TinyEmbedder(Backbone):
    """A deterministic linear embedder that counts the rows it embeds (and can be slowed down)."""

    embedding_dim = 8

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(96 * 64, self.embedding_dim))
        self.rows_seen = 0
        self.seconds_per_batch = 0.0

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        self.rows_seen += len(patch)
        time.sleep(self.seconds_per_batch)
        return self.layers(patch)


def reference(backbone: nn.Module, patches: PatchCache) -> np.ndarray:
    with torch.no_grad():
        return backbone.layers(torch.from_numpy(np.array(patches.patches))).numpy()


@pytest.fixture
def patches(tone_clips: list[Clip], tmp_path: Path) -> PatchCache:
    return build_or_open_cache(
        tone_clips, tmp_path / "cache", SegmentationSettings(1.0, 0.5), LogMelSettings()
    )


def test_rows_are_the_backbones_embeddings_and_are_reused(patches: PatchCache) -> None:
    backbone = TinyEmbedder()
    first = build_or_open_embeddings(patches, backbone, batch_rows=7)
    assert backbone.rows_seen == len(patches.patches) > 20
    np.testing.assert_allclose(first.embeddings, reference(backbone, patches), atol=1e-5)
    again = build_or_open_embeddings(patches, backbone, batch_rows=7)
    assert backbone.rows_seen == len(patches.patches)  # nothing recomputed
    assert again.directory == first.directory
    assert first.directory.parent == patches.directory.parent  # beside the patch cache
    assert first.directory.name.startswith(patches.directory.name)


@pytest.mark.parametrize("damage", ["truncate", "meta"])
def test_a_broken_entry_is_rebuilt_never_read(patches: PatchCache, damage: str) -> None:
    backbone = TinyEmbedder()
    entry = build_or_open_embeddings(patches, backbone).directory
    if damage == "truncate":
        with open(entry / "embeddings.f32", "r+b") as handle:
            handle.truncate(12)
    else:
        (entry / "meta.json").write_text("{not json")
    rebuilt = build_or_open_embeddings(patches, backbone)
    assert backbone.rows_seen == 2 * len(patches.patches)  # computed again
    np.testing.assert_allclose(rebuilt.embeddings, reference(backbone, patches), atol=1e-5)


def test_other_weights_get_their_own_entry(patches: PatchCache) -> None:
    first = build_or_open_embeddings(patches, TinyEmbedder(seed=0))
    other = TinyEmbedder(seed=0)
    with torch.no_grad():
        other.layers[1].bias[0] += 1.0  # one changed number is other weights
    second = build_or_open_embeddings(patches, other)
    assert second.directory != first.directory and other.rows_seen == len(patches.patches)
    np.testing.assert_allclose(second.embeddings, reference(other, patches), atol=1e-5)


def test_other_segmentation_gets_its_own_entry(
    patches: PatchCache, tone_clips: list[Clip], tmp_path: Path
) -> None:
    backbone = TinyEmbedder()
    overlap = build_or_open_embeddings(patches, backbone)
    nonoverlap_patches = build_or_open_cache(
        tone_clips, tmp_path / "cache", SegmentationSettings(1.0, 1.0), LogMelSettings()
    )
    nonoverlap = build_or_open_embeddings(nonoverlap_patches, backbone)
    assert nonoverlap.directory != overlap.directory
    assert len(nonoverlap.embeddings) == len(nonoverlap_patches.patches) < len(patches.patches)
    np.testing.assert_allclose(
        nonoverlap.embeddings, reference(backbone, nonoverlap_patches), atol=1e-5
    )


_BUILD_SLOWLY = """
import sys
import segser.data.cache.embeddings as embedding_cache
from segser.data.cache.patches import PatchCache
from tests.data.test_embedding_cache import TinyEmbedder
embedding_cache.CHECKPOINT_EVERY_BATCHES = 1
backbone = TinyEmbedder()
backbone.seconds_per_batch = 0.3
embedding_cache.build_or_open_embeddings(PatchCache.open(__import__("pathlib").Path(sys.argv[1])),
                                         backbone, batch_rows=3)
"""


def test_a_killed_build_resumes_where_it_stopped(patches: PatchCache) -> None:
    env = {**os.environ, "PYTHONPATH": child_pythonpath()}
    child = subprocess.Popen(
        [sys.executable, "-c", _BUILD_SLOWLY, str(patches.directory)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    partial = None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and child.poll() is None:
            found = list(patches.directory.parent.glob("*.partial/progress.json"))
            if found and json.loads(found[0].read_text())["rows_done"] >= 9:
                partial = found[0].parent
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate()
    assert partial is not None, f"the build never checkpointed: {stderr.decode()[-500:]}"
    done = json.loads((partial / "progress.json").read_text())["rows_done"]
    assert 9 <= done < len(patches.patches)

    backbone = TinyEmbedder()
    resumed = build_or_open_embeddings(patches, backbone, batch_rows=3)
    assert backbone.rows_seen == len(patches.patches) - done  # only the rows the kill lost
    np.testing.assert_allclose(resumed.embeddings, reference(backbone, patches), atol=1e-5)
    assert not partial.exists()
