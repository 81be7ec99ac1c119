"""`python -m segser.report SWEEP_DIR`: a sweep's results in the paper's layout, from local files.

One row per metric, one column per configuration (overrides minus seed/fold), cells
`mean +- std (n)`; the jobs that are missing or failed; the mean confusion matrix per
configuration (as the paper's Figure 3) and the accuracies as bars. `--compare-paper` puts the
paper's Tables 3 and 4 beside ours.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segser.errors import SegserError
from segser.runs.plots import plot_accuracy_bars, plot_confusion_matrix
from segser.runs.tables import (
    EMPTY,
    PAPER_METRICS,
    Column,
    compare_with_paper,
    mean_confusion,
    metric_rows,
    summarise,
)
from segser.runs.sweeps import (
    REPETITION_KEYS,
    Configuration,
    SweepResults,
    group_jobs,
    load_results,
    shared_overrides,
)


@dataclass
class Report:
    results: SweepResults
    configurations: list[Configuration]
    metrics: list[str]
    columns: list[Column]
    legend: str  # what the cells mean and what was pooled
    notes: list[str] = field(default_factory=list)  # how ours match the paper's columns
    files: dict[str, Path] = field(default_factory=dict)
    confusion_plots: list[Path] = field(default_factory=list)

    @property
    def markdown(self) -> str:
        return "\n\n".join([self.table_markdown, self.jobs_markdown, self.figures_markdown])

    @property
    def table_markdown(self) -> str:
        lines = [f"# Results: {self.results.root}", "", summary_line(self.results), ""]
        lines += [self.legend, "", markdown_table(self.columns, self.metrics), ""]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip()

    @property
    def jobs_markdown(self) -> str:
        return "\n".join(["## Missing or failed jobs", "", *job_lines(self.results)])

    @property
    def figures_markdown(self) -> str:
        lines = ["## Figures", ""]
        for name, path in self.files.items():
            if path.suffix == ".png":
                lines.append(f"![{name}]({path.name})")
        return "\n".join(lines if len(lines) > 2 else [*lines, "No job has metrics.json yet."])


def markdown_table(columns: Sequence[Column], metrics: Sequence[str]) -> str:
    rows = [["metric", *(c.name for c in columns)], ["---"] * (len(columns) + 1)]
    rows += [[m, *(c.cells.get(m, EMPTY).text() for c in columns)] for m in metrics]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows)


def write_csv(columns: Sequence[Column], metrics: Sequence[str], path: Path) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", *(c.name for c in columns)])
        for m in metrics:
            writer.writerow([m, *(c.cells.get(m, EMPTY).text() for c in columns)])
    return path


def summary_line(results: SweepResults) -> str:
    done = len(results.jobs) - len(results.missing)
    line = f"{done} of {len(results.jobs)} jobs wrote metrics.json"
    expected = [plan.expected_jobs for plan in results.plans]
    if expected and None not in expected:
        line += f"; the sweep{'s' if len(expected) > 1 else ''} expected {sum(expected)} jobs"
    return line + "."


def job_lines(results: SweepResults) -> list[str]:
    """Each job without metrics.json and why, then expected versus found per sweep."""
    lines = []
    for job in results.missing:
        if job.error is not None:
            failed = "" if job.error.startswith("crashed:") else "failed: "
            lines.append(f"- `{job.name}`: {failed}{job.error}")
        else:
            logs = sorted(p.name for p in job.path.glob("*.log"))
            hint = f"; see {logs[0]}" if logs else ""
            lines.append(
                f"- `{job.name}`: no metrics.json and no error.txt "
                f"(crashed, killed or still running{hint})"
            )
    if not lines:
        lines.append("- none: every job dir has metrics.json")
    for plan in results.plans:
        where = plan.path.parent.relative_to(results.root).as_posix()
        where = "sweep" if where == "." else f"sweep `{where}`"
        sweep = " x ".join(plan.axes) or "no swept values"
        expected = "unknown (not the basic sweeper, or an interval/glob sweep)"
        if plan.expected_jobs is not None:
            expected = str(plan.expected_jobs)
        lines.append(
            f"- {where} ({sweep}): expected {expected} jobs, found {plan.found_jobs} job dirs"
        )
    return lines


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", label).strip("_")[:80] or "run"


def write_plots(report: Report, out_dir: Path) -> None:
    """A mean confusion matrix per configuration and one bar chart of the five accuracies."""
    for i, configuration in enumerate(report.configurations):
        jobs = configuration.succeeded
        if not jobs:
            continue
        matrix, classes = mean_confusion(jobs)
        path = out_dir / f"confusion_{i:02d}_{slug(configuration.label)}.png"
        plot_confusion_matrix(
            np.nan_to_num(matrix),
            classes,
            path,
            title=f"{configuration.label}\nmean of {len(jobs)} row-normalised clip confusions",
        )
        report.confusion_plots.append(path)
        report.files[f"confusion {configuration.label}"] = path
    metrics = [m for m in PAPER_METRICS if m in report.metrics]
    shown = [c for c in report.columns if any(c.cells.get(m, EMPTY).n for m in metrics)]
    if not shown or not metrics:
        return
    means = [[c.cells[m].mean if c.cells[m].n else np.nan for m in metrics] for c in shown]
    stds = [
        [c.cells[m].std if c.cells[m].std is not None else np.nan for m in metrics] for c in shown
    ]
    report.files["accuracies"] = plot_accuracy_bars(
        [c.name for c in shown],
        metrics,
        np.array(means, dtype=float),
        np.array(stds, dtype=float),
        out_dir / "accuracies.png",
        hatched=[c.from_paper for c in shown],
        title="accuracies per configuration (error bars: sample std; hatched: the paper)",
    )


def build_report(
    sweep_dir: Path,
    out_dir: Path | None = None,
    over: Sequence[str] = REPETITION_KEYS,
    compare_paper: bool = False,
) -> Report:
    """Load, group, tabulate, plot and write report.md / report.csv into out_dir."""
    results = load_results(Path(sweep_dir))
    configurations = group_jobs(results.jobs, over)
    metrics = metric_rows(results.jobs)
    columns = summarise(configurations, metrics)
    pooled = ", ".join(over) or "nothing"
    shared = shared_overrides([c.overrides for c in configurations])
    legend = (
        f"Pooled over: {pooled}. Shared by all columns: {' '.join(shared) or '-'}. Cells: mean "
        "+- sample std (ddof=1) over the jobs with metrics.json, their count in brackets; std "
        "is '-' where n = 1, the cell '-' where n = 0. Accuracies are fractions (paper style)."
    )
    notes: list[str] = []
    if compare_paper:
        columns, notes = compare_with_paper(columns, configurations)
    report = Report(results, configurations, metrics, columns, legend, notes)
    out_dir = Path(out_dir) if out_dir is not None else results.root / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_plots(report, out_dir)
        report.files["csv"] = write_csv(columns, metrics, out_dir / "report.csv")
        report.files["markdown"] = out_dir / "report.md"
        report.files["markdown"].write_text(report.markdown + "\n")
    except OSError as error:
        raise SegserError(
            f"{out_dir}: cannot write the report ({error.strerror or error}). "
            "Pass --out DIR with a writable directory."
        ) from None
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m segser.report",
        description="Tabulate a Hydra sweep (or run) directory in the paper's layout.",
    )
    parser.add_argument("sweep_dir", type=Path, help="outputs/multirun/DATE/TIME, or a run dir")
    parser.add_argument("--out", type=Path, default=None, help="default: SWEEP_DIR/report")
    parser.add_argument(
        "--compare-paper", action="store_true", help="add the paper's Tables 3 and 4 as columns"
    )
    parser.add_argument(
        "--over",
        default=",".join(REPETITION_KEYS),
        help="comma-separated override keys pooled into one column (default: seed,split.fold)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    over = tuple(key.strip() for key in args.over.split(",") if key.strip())
    try:
        report = build_report(args.sweep_dir, args.out, over, args.compare_paper)
    except SegserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.markdown)
    print("\nwritten: " + ", ".join(str(p) for p in report.files.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
