"""What every command-line entry point shares: one clear line for user errors, no traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from segser.errors import SegserError

log = logging.getLogger("segser")
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def composed(config_name: str, overrides: Sequence[str], **options: Any) -> DictConfig:
    """The app's config with these overrides, as `python -m segser.<config_name>` composes it
    (for scripts and tests that run segser in-process)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides), **options)


def output_root() -> Path:
    """$SEGSER_OUTPUT_DIR, else outputs/: where runs, sweeps, reports and predictions go
    (conf/paths/default.yaml reads the same variable for Hydra's run directories)."""
    return Path(os.environ.get("SEGSER_OUTPUT_DIR") or "outputs")


def run_dir() -> Path:
    """The current Hydra job's output directory."""
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_user_errors(job: Callable[..., Any]) -> Callable[..., Any]:
    """Print a SegserError as one line; in a sweep, record it and let the other jobs go on."""

    @wraps(job)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return job(*args, **kwargs)
            except MissingMandatoryValue as missing:  # a `???` value the command did not set
                key = missing.full_key
                raise SegserError(f"{key} is required: add {key}=... to the command.") from None
        except SegserError as error:
            if HydraConfig.initialized():
                (run_dir() / "error.txt").write_text(f"{error}\n")
            if in_multirun():  # the sweep's log names the failed job; the others go on
                log.error("%s", error)
                return None
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except Exception as crash:  # in a sweep, leave a note for the report, then fail the job
            if in_multirun():
                (run_dir() / "error.txt").write_text(f"crashed: {type(crash).__name__}: {crash}\n")
            raise

    return wrapper
