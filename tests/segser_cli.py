"""Run a segser entry point as a user would: a subprocess with its own data and output dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child_pythonpath() -> str:
    """This checkout first, then the caller's PYTHONPATH (extended, never replaced: packages
    may come from it, as on a GPU machine where wheels sit in a --target folder)."""
    return os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])


def segser_env(
    tmp_path: Path | None = None, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The caller's environment without IEMOCAP_ROOT and W&B settings, so tests see a clean
    setup, importing this checkout's segser; with tmp_path, data and outputs go to
    tmp_path/data, /outputs."""
    env = {k: v for k, v in os.environ.items() if k != "IEMOCAP_ROOT" and not k.startswith("WANDB")}
    env["PYTHONPATH"] = child_pythonpath()
    if tmp_path is not None:
        env.update(
            SEGSER_OUTPUT_DIR=str(tmp_path / "outputs"), SEGSER_DATA_DIR=str(tmp_path / "data")
        )
    env.update(extra_env or {})
    return env


def segser_command(module: str, *args: str) -> list[str]:
    """`python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_segser(
    module: str,
    *args: str,
    tmp_path: Path | None = None,
    timeout: int = 600,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m module args` to the end, in segser_env(tmp_path, extra_env)."""
    return subprocess.run(
        segser_command(module, *args),
        capture_output=True,
        text=True,
        env=segser_env(tmp_path, extra_env),
        timeout=timeout,
        check=False,
    )
