"""Read what sweeps left on disk (local dirs, no W&B) into one table: a row per job dir."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from segser.errors import SegserError

REPETITION_KEYS = ("seed", "split.fold")  # pooled by default: seeds and folds
_FIX = "Pass a sweep directory such as outputs/multirun/DATE/TIME, or a run directory."


@dataclass(frozen=True)
class SweepPlan:  # a multirun.yaml's swept axes (`key=a,b`) and the jobs they make
    path: Path
    axes: tuple[str, ...]
    expected_jobs: int | None
    found_jobs: int


@dataclass(frozen=True)
class Sweep:
    root: Path
    jobs: pd.DataFrame  # name, path, overrides, error, succeeded, metrics.*, config.*, ...
    plans: list[SweepPlan]

    @property
    def missing(self) -> pd.DataFrame:
        return self.jobs[~self.jobs.succeeded]


def read_job(path: Path, name: str) -> dict:
    """One job dir as a row; an unreadable metrics.json or overrides.yaml is the user's to fix."""
    row: dict = {"name": name, "path": path, "overrides": None, "error": None, "succeeded": False}
    try:
        if (file := path / ".hydra" / "overrides.yaml").is_file():
            loaded = yaml.safe_load(file.read_text()) or []
            if not isinstance(loaded, list):
                raise TypeError("not a list of override strings")
            row["overrides"] = tuple(str(o).lstrip("+") for o in loaded)  # `+seed=0` sets seed
        if (file := path / "metrics.json").is_file():
            payload = json.loads(file.read_text())
            metrics = dict(payload["metrics"])  # not a segser metrics.json: TypeError, KeyError
            row = {**payload, **row, "metrics": metrics, "succeeded": True}
            row["overrides"] = row["overrides"] or ()  # a run without Hydra's multirun
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as error:
        raise SegserError(
            f"{file}: cannot read it ({error}). Rerun that job, or delete the file to have "
            "the job listed as missing."
        ) from None
    if (error := path / "error.txt").is_file():
        text = " ".join(error.read_text(errors="replace").split()) or "(empty error.txt)"
        row["error"] = text if len(text) <= 300 else text[:297] + "..."  # a crash can run on
    return row


def sweep_plan(multirun_yaml: Path, found_jobs: int) -> SweepPlan:
    """The job count Hydra's basic sweeper makes: the product of each swept override's length."""
    try:
        hydra = yaml.safe_load(multirun_yaml.read_text())["hydra"]
        sweeper = hydra.get("sweeper") or {}
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        parsed = OverridesParser.create().parse_overrides([*params, *hydra["overrides"]["task"]])
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, HydraException):
        return SweepPlan(multirun_yaml, (), None, found_jobs)
    keys = [o.get_key_element() for o in parsed]  # a later override of a key wins, as in Hydra
    last = [o for i, o in enumerate(parsed) if keys[i] not in keys[i + 1 :]]
    swept, expected = [o for o in last if o.is_sweep_override()], None
    with contextlib.suppress(HydraException):  # interval() or glob(): not countable
        if str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            expected = math.prod(len(list(o.sweep_string_iterator())) for o in swept)
    axes = tuple(o.input_line.lstrip("+") for o in swept)
    return SweepPlan(multirun_yaml, axes, expected, found_jobs)


def load_results(root: Path) -> Sweep:
    """Every job under root (a sweep, a run, or a folder of those), in sweep order."""
    root = Path(root)
    root = root.parent if root.name == "metrics.json" and root.is_file() else root
    if not root.is_dir():
        raise SegserError(f"{root}: {'not a' if root.exists() else 'no such'} directory. {_FIX}")
    dirs = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
    own = ("metrics.json", "error.txt", ".hydra/overrides.yaml")  # what a job or run dir holds
    marked = [d for d in dirs if any((d / f).is_file() for f in own)]
    sweeps = [d for d in dirs if (d / "multirun.yaml").is_file()]
    sweeps += [] if sweeps or root in marked or not marked else [root]
    kids = [
        c for s in sweeps for c in s.iterdir() if c.is_dir() and (c.name.isdigit() or c in marked)
    ]
    kids += [d for d in marked if d not in kids]
    kids = [j for j in kids if not set(j.parents) & set(kids)]  # not a run's own subdirs
    dirs = sorted(kids, key=lambda j: (j.parent.as_posix(), j.name.zfill(12)))  # 2 before 10
    if not dirs:
        raise SegserError(
            f"{root}: no job directories in it (no metrics.json, error.txt or "
            f".hydra/overrides.yaml found). {_FIX}"
        )
    rows = [read_job(d, d.relative_to(root).as_posix() if d != root else d.name) for d in dirs]
    jobs = pd.json_normalize(rows, max_level=2)  # metrics.SA, config.head.units, split.name...
    found = {s: sum(d.parent == s for d in dirs) for s in sweeps if (s / "multirun.yaml").is_file()}
    return Sweep(root, jobs, [sweep_plan(s / "multirun.yaml", n) for s, n in found.items()])


def configurations(
    jobs: pd.DataFrame, over: Sequence[str] = REPETITION_KEYS
) -> tuple[pd.Series, list[str]]:
    """Each job's overrides less the pooled keys and those all share (second); None: not started."""
    pooled = {key.lstrip("+~") for key in over}
    kept = [
        o and tuple(x for x in o if re.split("[=@]", x.lstrip("+~"))[0] not in pooled)
        for o in jobs.overrides
    ]
    first = {frozenset(k): k for k in reversed(kept) if k is not None}  # the first job's order
    groups = [first[g] for g in dict.fromkeys(frozenset(k) for k in kept if k is not None)]
    shared = [o for o in groups[0] if all(o in g for g in groups[1:])] if len(groups) > 1 else []
    empty = "(shared overrides only)" if shared else "(no overrides)"
    names = {g: " ".join(o for o in k if o not in shared) or empty for g, k in first.items()}
    labels = [None if k is None else names[frozenset(k)] for k in kept]
    return pd.Series(labels, index=jobs.index, dtype=object), shared


def newest_sweep(multirun_dir: Path) -> Path:
    """The latest sweep under outputs/multirun (DATE/TIME names sort in time order)."""
    found = sorted(p.parent for p in Path(multirun_dir).glob("*/*/multirun.yaml"))
    if not found:
        raise SegserError(
            f"{multirun_dir}: no sweep in it (no DATE/TIME/multirun.yaml). Run one with "
            "`make sweep`, or pass a sweep directory (SWEEP_DIR=... for make)."
        )
    return found[-1]
