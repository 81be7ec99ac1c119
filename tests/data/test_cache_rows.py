"""The row table both segment caches share (segser.data.cache.rows): the same rows for the same
clips whatever is stored, and an index that points outside its entry is rebuilt, never read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segser.data.cache.patches import PatchCache
from segser.data.cache.waveforms import WaveformCache
from tests.data.test_cache_formats import BUILD, FEATURES, SEGMENTATION, tone_clips


def build(kind: str, tmp_path: Path) -> PatchCache | WaveformCache:
    """The kind's entry of the three tones (written once: a rewrite would change the key)."""
    clips = tone_clips(tmp_path / "wav")
    return BUILD[kind](clips, tmp_path / "cache", SEGMENTATION, FEATURES[kind])


def test_both_kinds_hold_the_same_rows_of_the_same_clips(tmp_path: Path) -> None:
    patches, waveforms = build("patches", tmp_path), build("waveforms", tmp_path)
    for cache in (patches, waveforms):
        assert len(cache) == 11 and cache.kept_clip_indices == [0, 1, 2]
        assert cache.rows_for_clips([2, 0]).tolist() == [0, 1, 5, 6, 7, 8, 9, 10]
    np.testing.assert_array_equal(patches.row_clip, waveforms.row_clip)
    np.testing.assert_array_equal(patches.row_segment, waveforms.row_segment)


POINTS_OUTSIDE = [
    ("patches", "row_clip", 3),  # past the clip table
    ("patches", "row_clip", -1),
    ("waveforms", "row_clip", 3),
    ("waveforms", "row_clip", -1),
    ("waveforms", "row_window", 10**6),  # past samples.f32
]


@pytest.mark.parametrize(("kind", "name", "value"), POINTS_OUTSIDE)
def test_an_index_pointing_outside_its_entry_is_rebuilt(
    kind: str, name: str, value: int, tmp_path: Path, caplog
) -> None:
    first = build(kind, tmp_path)
    expected = {name: getattr(first, name).copy() for name in ("row_clip", "row_segment")}
    with np.load(first.directory / "index.npz") as index:
        arrays = {key: index[key] for key in index.files}
    arrays[name][-1] = value
    np.savez(first.directory / "index.npz", **arrays)
    del first
    with caplog.at_level("WARNING", logger="segser"):
        again = build(kind, tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "rebuilding" in warnings[0], warnings
    for key, values in expected.items():
        np.testing.assert_array_equal(getattr(again, key), values)
