"""Read any other corpus from a CSV manifest (path,label[,speaker,session]) into a clip table."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from segser.data.corpora.clips import BadClipPolicy, BadClips, Clip, read_clip
from segser.errors import BadClipError, SegserError

_REQUIRED_COLUMNS = ("path", "label")
_UNKNOWN = "unknown"


def read_manifest(
    csv_path: str | Path, classes: Sequence[str], on_bad_clip: BadClipPolicy = "fail"
) -> list[Clip]:
    """Clips listed in `csv_path`, sorted by clip_id (the path's stem, which must be unique).

    Relative paths resolve against the CSV's folder, so a corpus folder can be moved whole.
    """
    csv_path = Path(csv_path).expanduser().resolve()
    if not csv_path.is_file():
        raise SegserError(f"{csv_path}: manifest not found. Point dataset.csv at a CSV file")
    bad_clips = BadClips(on_bad_clip, csv_path)
    clips = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise SegserError(
                f"{csv_path}: manifest lacks column(s) {', '.join(missing)} (found {columns}). "
                "The first line must be a header with path,label[,speaker,session]"
            )
        reader.fieldnames = columns
        for row in reader:
            where = f"row {reader.line_num}"
            path_text = (row.get("path") or "").strip()
            label = (row.get("label") or "").strip()
            if not path_text:
                raise SegserError(f"{csv_path}: {where} has an empty path. Fill it in or delete it")
            path = csv_path.parent / path_text
            try:
                if label not in classes:
                    raise BadClipError(
                        csv_path,
                        f"{where} ({path_text}) has label {label!r}, not one of {list(classes)}",
                        "Fix the label, or add it to classes",
                    )
                speaker = (row.get("speaker") or "").strip() or _UNKNOWN
                session = (row.get("session") or "").strip() or _UNKNOWN
                clips.append(read_clip(path.stem, path, label, speaker, session))
            except BadClipError as err:
                bad_clips.handle(err)
    return bad_clips.finish(clips)
