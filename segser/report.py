"""`python -m segser.report [SWEEP_DIR]`: a sweep's results in the paper's layout, from local files.

One row per metric, one column per configuration (overrides minus seed/fold), cells
`mean +- std (n)`; the jobs that are missing or failed; the mean confusion matrix per
configuration (as the paper's Figure 3) and the accuracies as bars. `--compare-paper` puts the
paper's Tables 3 and 4 beside ours. Without SWEEP_DIR: the newest sweep under
$SEGSER_OUTPUT_DIR/multirun (default outputs/multirun).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segser.errors import SegserError
from segser.runs.plots import plot_accuracy_bars, plot_confusion_matrix
from segser.runs.sweeps import REPETITION_KEYS, Sweep, configurations, load_results, newest_sweep
from segser.runs.tables import (
    PAPER_METRICS,
    compare_with_paper,
    mean_confusion,
    metric_names,
    summarise,
    text_table,
)


@dataclass
class Report:
    results: Sweep
    labels: pd.Series  # each job's configuration (its column)
    cells: pd.DataFrame  # (column, metric) -> mean, std, n
    table: pd.DataFrame  # metrics down, columns across, `mean +- std (n)`
    legend: str  # what the cells mean and what was pooled
    notes: list[str] = field(default_factory=list)  # how ours match the paper's columns
    files: dict[str, Path] = field(default_factory=dict)
    confusion_plots: list[Path] = field(default_factory=list)

    @property
    def markdown(self) -> str:
        return "\n\n".join([self.table_markdown, self.jobs_markdown, self.figures_markdown])

    @property
    def table_markdown(self) -> str:
        table = self.table.rename(columns=lambda c: c.replace("|", "\\|")).to_markdown()
        lines = [f"# Results: {self.results.root}", "", summary_line(self.results), ""]
        lines += [self.legend, "", table, "", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines).rstrip()

    @property
    def jobs_markdown(self) -> str:
        return "\n".join(["## Missing or failed jobs", "", *job_lines(self.results)])

    @property
    def figures_markdown(self) -> str:
        images = [f"![{name}]({p.name})" for name, p in self.files.items() if p.suffix == ".png"]
        return "\n".join(["## Figures", "", *(images or ["No job has metrics.json yet."])])


def summary_line(results: Sweep) -> str:
    line = f"{int(results.jobs.succeeded.sum())} of {len(results.jobs)} jobs wrote metrics.json"
    expected = [plan.expected_jobs for plan in results.plans]
    if expected and None not in expected:
        line += f"; the sweep{'s' if len(expected) > 1 else ''} expected {sum(expected)} jobs"
    return line + "."


def job_lines(results: Sweep) -> list[str]:
    """Each job without metrics.json and why, then expected versus found per sweep."""
    lines = []
    for job in results.missing.itertuples():
        if isinstance(job.error, str):
            failed = "" if job.error.startswith("crashed:") else "failed: "
            lines.append(f"- `{job.name}`: {failed}{job.error}")
        else:
            logs = sorted(p.name for p in job.path.glob("*.log"))
            hint = f"; see {logs[0]}" if logs else ""
            lines.append(
                f"- `{job.name}`: no metrics.json and no error.txt "
                f"(crashed, killed or still running{hint})"
            )
    lines = lines or ["- none: every job dir has metrics.json"]
    for plan in results.plans:
        where = plan.path.parent.relative_to(results.root).as_posix()
        where = "sweep" if where == "." else f"sweep `{where}`"
        expected = plan.expected_jobs or "unknown (not the basic sweeper, or an interval/glob sweep)"
        lines.append(
            f"- {where} ({' x '.join(plan.axes) or 'no swept values'}): expected {expected} "
            f"jobs, found {plan.found_jobs} job dirs"
        )
    return lines


def write_plots(report: Report, out_dir: Path) -> None:
    """A mean confusion matrix per configuration and one bar chart of the five accuracies."""
    done = report.results.jobs[report.results.jobs.succeeded & report.labels.notna()]
    for i, label in enumerate(dict.fromkeys(report.labels.dropna())):
        jobs = done[report.labels[done.index] == label]
        if jobs.empty:
            continue
        matrix, classes = mean_confusion(jobs)
        name = re.sub(r"[^A-Za-z0-9.=-]+", "_", label).strip("_")[:80] or "run"
        title = f"{label}\nmean of {len(jobs)} row-normalised clip confusions"
        path = plot_confusion_matrix(
            np.nan_to_num(matrix), classes, out_dir / f"confusion_{i:02d}_{name}.png", title
        )
        report.confusion_plots.append(path)
        report.files[f"confusion {label}"] = path
    cells = report.cells[report.cells.index.get_level_values("metric").isin(PAPER_METRICS)]
    shown = cells.n.groupby(level="column", sort=False).sum() > 0
    if not shown.any():
        return
    columns, metrics = shown.index[shown], [m for m in PAPER_METRICS if m in report.table.index]
    means, stds = (cells[s].unstack("column").reindex(metrics)[columns] for s in ("mean", "std"))
    paper = cells.get("from_paper", pd.Series(False, cells.index)).groupby(level=0).any()
    report.files["accuracies"] = plot_accuracy_bars(
        means,
        stds,
        out_dir / "accuracies.png",
        hatched=[bool(paper[c]) for c in columns],
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
    labels, shared = configurations(results.jobs, over)
    metrics = metric_names(results.jobs)
    cells, notes = summarise(results.jobs, labels, metrics), []
    if compare_paper:
        cells, notes = compare_with_paper(cells, results.jobs, labels)
    legend = (
        f"Pooled over: {', '.join(over) or 'nothing'}. Shared by all columns: "
        f"{' '.join(shared) or '-'}. Cells: mean +- sample std (ddof=1) over the jobs with "
        "metrics.json, their count in brackets; std is '-' where n = 1, the cell '-' where "
        "n = 0. Accuracies are fractions (paper style)."
    )
    report = Report(results, labels, cells, text_table(cells, metrics), legend, notes)
    out_dir = Path(out_dir) if out_dir is not None else results.root / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_plots(report, out_dir)
        report.table.to_csv(out_dir / "report.csv")
        (out_dir / "report.md").write_text(report.markdown + "\n")
    except OSError as error:
        raise SegserError(
            f"{out_dir}: cannot write the report ({error.strerror or error}). "
            "Pass --out DIR with a writable directory."
        ) from None
    report.files |= {"csv": out_dir / "report.csv", "markdown": out_dir / "report.md"}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segser.report", description=__doc__)
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep (or run) directory")
    parser.add_argument("--out", type=Path, default=None, help="default: SWEEP_DIR/report")
    parser.add_argument(
        "--compare-paper", action="store_true", help="add the paper's Tables 3 and 4 as columns"
    )
    parser.add_argument(
        "--over",
        default=",".join(REPETITION_KEYS),
        help="comma-separated override keys pooled into one column (default: seed,split.fold)",
    )
    args = parser.parse_args(argv)
    over = tuple(key.strip() for key in args.over.split(",") if key.strip())
    try:
        outputs = Path(os.environ.get("SEGSER_OUTPUT_DIR") or "outputs")
        sweep_dir = args.sweep_dir or newest_sweep(outputs / "multirun")
        report = build_report(sweep_dir, args.out, over, args.compare_paper)
    except SegserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.markdown)
    print("\nwritten: " + ", ".join(str(p) for p in report.files.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
