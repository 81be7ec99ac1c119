"""A killed build resumes only from a checkpoint that fits and whose rows are on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segser.data.cache.entry import finish_build, resume_build

ROW_BYTES = 8


def _rows_done(state: dict) -> int:
    return int(state["rows_done"])  # a ValueError or KeyError means: do not resume


def _resume(folder: Path, progress: str | None, data_bytes: int) -> tuple[dict, int]:
    """resume_build on a folder holding `progress` (raw text) and `data_bytes` bytes of rows."""
    if progress is not None:
        (folder / "progress.json").write_text(progress)
    (folder / "rows.bin").write_bytes(b"\1" * data_bytes)
    fresh = {"rows_done": 0}
    state = resume_build(
        folder / "progress.json", folder / "rows.bin", ROW_BYTES, fresh, _rows_done, "test"
    )
    return state, (folder / "rows.bin").stat().st_size


def test_a_fitting_checkpoint_resumes_and_drops_later_rows(tmp_path: Path, caplog) -> None:
    with caplog.at_level("INFO", logger="segser"):
        state, size = _resume(tmp_path, '{"rows_done": 3}', 5 * ROW_BYTES + 2)
    assert state == {"rows_done": 3}
    assert size == 3 * ROW_BYTES  # rows 4, 5 and a half row were written after the checkpoint
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize(
    ("progress", "why"),
    [
        ('{"rows_done": 4}', "shorter than its checkpoint"),  # the data file holds 3 rows
        ('{"rows_done": "x"}', "invalid literal"),  # ValueError from the caller's check
        ('{"done": 1}', "rows_done"),  # KeyError
        ('{"rows_done": 1', "unreadable"),  # cut off mid-write
        ("[1]", "no JSON object"),
    ],
)
def test_an_untrusted_checkpoint_starts_over(tmp_path: Path, caplog, progress, why) -> None:
    with caplog.at_level("WARNING", logger="segser"):
        state, size = _resume(tmp_path, progress, 3 * ROW_BYTES)
    assert state == {"rows_done": 0} and size == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and why in warnings[0] and "starting over" in warnings[0], warnings


def test_no_checkpoint_starts_fresh_on_an_empty_data_file(tmp_path: Path) -> None:
    assert _resume(tmp_path, None, 2 * ROW_BYTES) == ({"rows_done": 0}, 0)


def test_finish_writes_meta_and_drops_the_checkpoint(tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    progress.write_text('{"rows_done": 3}')
    finish_build(progress, {"rows": 3})
    assert json.loads((tmp_path / "meta.json").read_text()) == {"rows": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
