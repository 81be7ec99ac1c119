"""The on-disk formats of the patch and waveform caches, pinned: users' existing entries stay valid.

A change to a cache's key, meta.json, index.npz or data file makes every user rebuild (or, worse,
misread) their caches, so the values here were taken from the builds before the two caches
shared one skeleton (segser.data.cache.rows) and must not move unless a format version does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.data.cache.patches import build_or_open_cache, cache_key
from segser.data.cache.waveforms import build_or_open_waveforms
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.settings import WaveformSettings

SEGMENTATION = SegmentationSettings(1.0, 0.5, "pad")
FEATURES = {"patches": LogMelSettings(), "waveforms": WaveformSettings()}
BUILD = {"patches": build_or_open_cache, "waveforms": build_or_open_waveforms}
KEY_PREFIX = {"patches": "", "waveforms": "waveform-"}
# cache_key of two clips whose files do not exist (so no path, size or mtime of this machine).
PINNED_KEYS = {"patches": "70c7900cfa43f174", "waveforms": "6b2cacc3447bcdb9"}
META_SHA256 = {
    "patches": "c7d17044cd3b1521edc95501fd50f1cd61db46fe63ebecb21f1d898570a6477a",
    "waveforms": "680bf6f84c69520d6e86d7c6a063262f23a0508a8cb1dc7b2aea7d5d97c340a3",
}
ROW_CLIP = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]
ROW_SEGMENT = [0, 1, 0, 1, 2, 0, 1, 2, 3, 4, 5]
INDEX = {
    "patches": {"row_clip": ("<i8", ROW_CLIP), "row_segment": ("<i4", ROW_SEGMENT)},
    "waveforms": {
        "row_clip": ("<i8", ROW_CLIP),
        "row_segment": ("<i4", ROW_SEGMENT),
        "row_window": ("<i8", [0, 1, 3, 4, 5, 7, 8, 9, 10, 11, 12]),
        "row_length": (
            "<i4",
            [11200, 3200, 16000, 12800, 4800, 16000, 16000, 16000, 16000, 9600, 1600],
        ),
    },
}
DATA_FILE = {"patches": ("patches.f32", 270336), "waveforms": ("samples.f32", 448000)}
# The samples are the clips' PCM values as float32 and zeros: exact on any machine.
SAMPLES_SHA256 = "3e729a3073280c078993e84020546cff44ab970aca9771850b5aa9414f8c3213"
# Log-mel patches are float arithmetic: each row's mean, to 1e-3.
PATCH_ROW_MEANS = [-3.9384, -4.3858, -3.6279, -3.745, -4.254, -3.6234, -3.6234, -3.6234,
                   -3.6234, -3.9407, -4.4521]  # fmt: skip


def tone_clips(folder: Path) -> list[Clip]:
    """Three 16 kHz tones (0.7, 1.3 and 2.6 s): two, three and six 1 s segments at 0.5 s hop;
    files already there are kept (a rewrite would change their mtime, so the cache key)."""
    clips = []
    for i, (seconds, hz) in enumerate([(0.7, 220.0), (1.3, 330.0), (2.6, 440.0)]):
        path = folder / f"c{i}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(round(seconds * 16000)) / 16000
            sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), 16000, subtype="PCM_16")
        clips.append(Clip(f"c{i}", path, "sad", "s1", "S1", seconds))
    return clips


@pytest.mark.parametrize("kind", list(FEATURES))
def test_the_cache_key_is_pinned(kind: str) -> None:
    missing = [Clip(n, Path(f"/nonexistent/segser/{n}.wav"), "sad", "s1", "S1", 1.0) for n in "ab"]
    assert cache_key(missing, SEGMENTATION, FEATURES[kind]) == PINNED_KEYS[kind]


@pytest.mark.parametrize("kind", list(FEATURES))
def test_an_entry_is_written_as_before(kind: str, tmp_path: Path) -> None:
    clips = tone_clips(tmp_path / "wav")
    cache = BUILD[kind](clips, tmp_path / "cache", SEGMENTATION, FEATURES[kind])
    folder = cache.directory
    assert folder.name == KEY_PREFIX[kind] + cache_key(clips, SEGMENTATION, FEATURES[kind])
    data_name, data_bytes = DATA_FILE[kind]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["index.npz", "meta.json", data_name])
    meta = (folder / "meta.json").read_bytes()
    assert hashlib.sha256(meta).hexdigest() == META_SHA256[kind], meta.decode()
    with np.load(folder / "index.npz") as index:
        found = {name: (index[name].dtype.str, index[name].tolist()) for name in index.files}
    assert found == INDEX[kind]
    data = (folder / data_name).read_bytes()
    assert len(data) == data_bytes
    if kind == "waveforms":
        assert hashlib.sha256(data).hexdigest() == SAMPLES_SHA256
    else:
        rows = np.frombuffer(data, dtype=np.float32).reshape(len(ROW_CLIP), -1)
        np.testing.assert_allclose(rows.astype(np.float64).mean(1), PATCH_ROW_MEANS, atol=1e-3)
