"""User-facing errors: one line that names the file and the fix, never a traceback."""

from __future__ import annotations

from pathlib import Path


class SegserError(Exception):
    """An error caused by the user's input or setup; entry points print it as one line."""


class BadClipError(SegserError):
    """A clip that cannot be used (missing, corrupt, empty, NaN, unknown label)."""

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}. {fix}")
