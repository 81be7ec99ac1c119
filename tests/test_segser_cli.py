"""Child processes extend PYTHONPATH, never replace it: packages may come from it (issue 22 §5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.segser_cli import REPO, segser_env


def test_a_child_imports_packages_from_the_callers_pythonpath_and_this_checkouts_segser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "only_on_pythonpath.py").write_text("WHERE = 'site'\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    code = "import only_on_pythonpath, segser; print(only_on_pythonpath.WHERE, segser.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=segser_env(tmp_path),
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-1000:]
    where, segser_file = done.stdout.split()
    assert where == "site"
    assert Path(segser_file) == REPO / "segser" / "__init__.py"


def test_without_a_pythonpath_the_child_gets_this_checkout_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert segser_env()["PYTHONPATH"] == str(REPO)
