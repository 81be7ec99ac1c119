"""Read what a sweep left on disk: job dirs, their overrides and metrics.json, and the sweep plan.

Everything comes from local directories (no W&B): a Hydra multirun dir, a single run dir, or a
folder that holds several of either.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from segser.errors import SegserError

REPETITION_KEYS = ("seed", "split.fold")  # pooled by default: seeds and LOSO folds


@dataclass(frozen=True)
class Job:
    """One job dir: its overrides (None if Hydra never wrote them) and its result or error."""

    path: Path
    name: str
    overrides: tuple[str, ...] | None
    payload: dict[str, Any] | None  # metrics.json
    error: str | None  # error.txt's line

    @property
    def succeeded(self) -> bool:
        return self.payload is not None

    def config(self) -> dict[str, Any]:
        """The resolved config from metrics.json, else Hydra's (unresolved) .hydra/config.yaml."""
        if self.payload is not None and isinstance(self.payload.get("config"), dict):
            return self.payload["config"]
        path = self.path / ".hydra" / "config.yaml"
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                return {}
            return loaded if isinstance(loaded, dict) else {}
        return {}


@dataclass(frozen=True)
class SweepPlan:
    """A multirun.yaml's sweep: its axes (`key=a,b`) and how many jobs they make (None: unknown)."""

    path: Path
    axes: tuple[str, ...]
    expected_jobs: int | None
    found_jobs: int


@dataclass(frozen=True)
class Configuration:
    """Jobs that share their overrides once the repetition keys (seed, fold) are dropped."""

    overrides: tuple[str, ...]
    jobs: tuple[Job, ...]
    label: str

    @property
    def succeeded(self) -> list[Job]:
        return [job for job in self.jobs if job.succeeded]

    def config(self) -> dict[str, Any]:
        """The config of its first job with metrics.json (else of its first job)."""
        return (self.succeeded or list(self.jobs))[0].config()


@dataclass(frozen=True)
class SweepResults:
    root: Path
    jobs: list[Job]
    plans: list[SweepPlan]

    @property
    def missing(self) -> list[Job]:
        return [job for job in self.jobs if not job.succeeded]


@cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def parse_override(text: str) -> Override:
    """Hydra's own reading of one override string (`+seed=0`, `head.units=100,200`, ...)."""
    try:
        return _parser().parse_override(text)
    except HydraException as error:
        raise SegserError(f"cannot parse the override '{text}': {error}") from None


def override_key(text: str) -> str:
    """The config key or group an override sets, without `+`/`++`/`~` or a package."""
    return parse_override(text).key_or_group


def _display(text: str) -> str:
    return text.lstrip("+")  # `+seed=0` and `seed=0` set the same thing


def is_run_dir(path: Path) -> bool:
    """A job's or run's own dir: what segser.train or Hydra writes into each one."""
    return (
        (path / "metrics.json").is_file()
        or (path / "error.txt").is_file()
        or (path / ".hydra" / "overrides.yaml").is_file()
    )


def _job_dirs(sweep: Path) -> list[Path]:
    """A sweep's job subdirs in job order (Hydra names them 0, 1, ...; empty ones count too)."""
    children = [c for c in sweep.iterdir() if c.is_dir() and (c.name.isdigit() or is_run_dir(c))]
    return sorted(
        children, key=lambda c: (0, int(c.name), "") if c.name.isdigit() else (1, 0, c.name)
    )


def _discover(root: Path) -> tuple[list[Path], list[Path]]:
    """(sweep dirs, job dirs) under root; does not descend into a run or a sweep it found."""
    if is_run_dir(root):
        return [], [root]
    if (root / "multirun.yaml").is_file() or any(
        c.is_dir() and is_run_dir(c) for c in root.iterdir()
    ):
        return [root], _job_dirs(root)
    sweeps, jobs = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "multirun.yaml" in filenames:
            sweeps.append(here)
            jobs.extend(_job_dirs(here))
            dirnames.clear()
        elif here != root and is_run_dir(here):
            jobs.append(here)
            dirnames.clear()
        else:
            dirnames.sort()
    return sweeps, jobs


def read_job(path: Path, name: str) -> Job:
    """One job dir; an unreadable metrics.json or overrides.yaml is the user's to fix."""
    overrides = None
    overrides_file = path / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        try:
            loaded = yaml.safe_load(overrides_file.read_text()) or []
        except (OSError, yaml.YAMLError):
            loaded = None
        if not isinstance(loaded, list):
            raise SegserError(
                f"{overrides_file}: not a readable list of override strings. Restore the list "
                "Hydra wrote, or remove that job dir."
            )
        overrides = tuple(_display(str(o)) for o in loaded)
    payload = None
    metrics_file = path / "metrics.json"
    if metrics_file.is_file():
        try:
            payload = json.loads(metrics_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SegserError(
                f"{metrics_file}: cannot read it ({error}). Rerun that job, or delete the file "
                "to have the job listed as missing."
            ) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("metrics"), dict):
            raise SegserError(
                f"{metrics_file}: not a segser metrics.json (no 'metrics' object). Rerun that "
                "job with python -m segser.train, or delete the file."
            )
        if overrides is None:
            overrides = ()  # a run made without Hydra's multirun: nothing was overridden
    error_file = path / "error.txt"
    error = None
    if error_file.is_file():
        lines = [line.strip() for line in error_file.read_text(errors="replace").splitlines()]
        error = " ".join(line for line in lines if line) or "(empty error.txt)"
        error = error if len(error) <= 300 else error[:297] + "..."  # a crash's message can run on
    return Job(path, name, overrides, payload, error)


def sweep_plan(multirun_yaml: Path, found_jobs: int) -> SweepPlan:
    """The job count Hydra's basic sweeper makes: the product of each override's sweep length."""
    try:
        hydra = (yaml.safe_load(multirun_yaml.read_text()) or {}).get("hydra") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return SweepPlan(multirun_yaml, (), None, found_jobs)
    sweeper = hydra.get("sweeper") or {}
    params = sweeper.get("params") or {}
    task = (hydra.get("overrides") or {}).get("task") or []
    lines = [f"{key}={value}" for key, value in params.items()] + [str(t) for t in task]
    lengths: dict[str, int | None] = {}  # later overrides of a key win, as in BasicSweeper
    axes: dict[str, str] = {}
    for text in lines:
        try:
            override = _parser().parse_override(text)
        except HydraException:
            return SweepPlan(multirun_yaml, tuple(axes.values()), None, found_jobs)
        key = override.get_key_element()
        if not override.is_sweep_override():
            lengths[key] = 1
            axes.pop(key, None)
            continue
        axes[key] = _display(text)
        try:
            lengths[key] = len(list(override.sweep_string_iterator()))
        except HydraException:  # interval() or glob(): not countable without the config repo
            lengths[key] = None
    basic = str(sweeper.get("_target_", "")).endswith("BasicSweeper")
    counts = list(lengths.values())
    expected = math.prod(counts) if basic and None not in counts else None
    return SweepPlan(multirun_yaml, tuple(axes.values()), expected, found_jobs)


def load_results(root: Path) -> SweepResults:
    """Every job under root (a sweep, a run, or a folder of those), in sweep order."""
    root = Path(root)
    if root.is_file() and root.name == "metrics.json":
        root = root.parent  # a run named by its result file
    if not root.is_dir():
        problem = "not a directory" if root.exists() else "no such directory"
        raise SegserError(
            f"{root}: {problem}. Pass a sweep directory such as "
            "outputs/multirun/DATE/TIME, or a run directory holding metrics.json."
        )
    sweeps, job_dirs = _discover(root)
    if not job_dirs:
        raise SegserError(
            f"{root}: no job directories in it (no metrics.json, error.txt or "
            ".hydra/overrides.yaml found). Pass a Hydra sweep directory such as "
            "outputs/multirun/DATE/TIME, or a run directory holding metrics.json."
        )
    jobs = [read_job(d, d.relative_to(root).as_posix() if d != root else d.name) for d in job_dirs]
    plans = [
        sweep_plan(s / "multirun.yaml", sum(j.path.parent == s for j in jobs))
        for s in sweeps
        if (s / "multirun.yaml").is_file()
    ]
    return SweepResults(root, jobs, plans)


def group_jobs(jobs: Iterable[Job], over: Sequence[str] = REPETITION_KEYS) -> list[Configuration]:
    """Pool jobs whose overrides differ only in the repetition keys; order of first appearance."""
    pooled = {key.lstrip("+~") for key in over}
    groups: dict[frozenset[str], tuple[tuple[str, ...], list[Job]]] = {}
    for job in jobs:
        if job.overrides is None:
            continue  # Hydra never started it: listed as missing, cannot be placed
        kept = tuple(o for o in job.overrides if override_key(o) not in pooled)
        groups.setdefault(frozenset(kept), (kept, []))[1].append(job)
    shared = set(shared_overrides([kept for kept, _ in groups.values()]))
    configurations = []
    for kept, members in groups.values():
        varying = [o for o in kept if o not in shared]
        label = " ".join(varying) or ("(shared overrides only)" if shared else "(no overrides)")
        configurations.append(Configuration(kept, tuple(members), label))
    return configurations


def shared_overrides(override_sets: Sequence[Sequence[str]]) -> list[str]:
    """Overrides every configuration has, named once above the table instead of in each column."""
    if len(override_sets) < 2:
        return []
    first, *rest = override_sets
    return [o for o in first if all(o in other for other in rest)]


def newest_sweep(multirun_dir: Path) -> Path:
    """The latest sweep under outputs/multirun (DATE/TIME names sort in time order)."""
    found = sorted(p.parent for p in Path(multirun_dir).glob("*/*/multirun.yaml"))
    if not found:
        raise SegserError(
            f"{multirun_dir}: no sweep in it (no DATE/TIME/multirun.yaml). Run one with "
            "`make sweep`, or point SEGSER_SWEEP_DIR at a sweep directory."
        )
    return found[-1]
