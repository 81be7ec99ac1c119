"""`python -m segser.report [SWEEP_DIR]`: a sweep's results in the paper's layout, from local files.

Default SWEEP_DIR: the newest sweep under $SEGSER_OUTPUT_DIR/multirun (default outputs/multirun)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from segser.errors import SegserError
from segser.runs import tables
from segser.runs.plots import plot_accuracy_bars, plot_confusion_matrix
from segser.runs.sweeps import REPETITION_KEYS, Sweep, configurations, load_results, newest_sweep
from segser.setup.entry import output_root


@dataclass
class Report:
    results: Sweep
    cells: pd.DataFrame  # (column, metric) -> mean, std, n
    table: pd.DataFrame  # metrics down, columns across, `mean +- std (n)`
    table_markdown: str
    jobs_markdown: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def confusion_plots(self) -> list[Path]:
        return [path for name, path in self.files.items() if name.startswith("confusion ")]

    @property
    def markdown(self) -> str:
        images = [f"![{name}]({p.name})" for name, p in self.files.items() if p.suffix == ".png"]
        figures = "\n".join(["## Figures", "", *(images or ["No job has metrics.json yet."])])
        return "\n\n".join([self.table_markdown, self.jobs_markdown, figures])


def build_report(
    sweep_dir: Path,
    out_dir: Path | None = None,
    over: Sequence[str] = REPETITION_KEYS,
    compare_paper: bool = False,
) -> Report:
    """Load, group, tabulate, plot and write report.md / report.csv into out_dir."""
    results = load_results(Path(sweep_dir))
    labels, shared = configurations(results.jobs, over)
    (cells, metrics), notes = tables.summarise(results.jobs, labels), []
    if compare_paper:
        cells, notes = tables.compare_with_paper(cells, results.jobs, labels)
    summary = f"{int(results.jobs.succeeded.sum())} of {len(results.jobs)} jobs wrote metrics.json"
    if (expected := [plan.expected_jobs for plan in results.plans]) and None not in expected:
        summary += f"; the sweep{'s' if len(expected) > 1 else ''} expected {sum(expected)} jobs"
    legend = (
        f"Pooled over: {', '.join(over) or 'nothing'}. Shared by all columns: "
        f"{' '.join(shared) or '-'}. Cells: mean +- sample std (ddof=1) over the jobs with "
        "metrics.json, their count in brackets; std is '-' where n = 1, the cell '-' where "
        "n = 0. Accuracies are fractions (paper style)."
    )
    std = cells["std"].map("{:.3f}".format).where(cells["std"].notna(), "-")
    text = cells["mean"].map("{:.3f}".format) + " +- " + std + " ("
    text = (text + cells.n.astype(int).astype(str) + ")").where(cells["mean"].notna(), "-")
    columns = list(dict.fromkeys(cells.index.get_level_values("column")))
    table = (
        text.unstack("column").reindex(metrics, columns=columns).fillna("-").rename_axis("metric")
    )
    markdown = table.rename(columns=lambda c: c.replace("|", "\\|")).to_markdown()
    head = [f"# Results: {results.root}", f"{summary}.", legend, markdown]
    table_markdown = "\n\n".join([*head, "\n".join(f"- {note}" for note in notes)]).rstrip()
    lines = []  # each job without metrics.json and why, then expected versus found per sweep
    for job in results.missing.itertuples():
        logs = "".join(f"; see {p.name}" for p in sorted(job.path.glob("*.log"))[:1])
        why = f"no metrics.json and no error.txt (crashed, killed or still running{logs})"
        if isinstance(job.error, str):
            why = job.error if job.error.startswith("crashed:") else f"failed: {job.error}"
        lines.append(f"- `{job.name}`: {why}")
    lines = lines or ["- none: every job dir has metrics.json"]
    unknown = "unknown (not the basic sweeper, or an interval/glob sweep)"
    for plan in results.plans:
        where = plan.path.parent.relative_to(results.root).as_posix()
        where = "sweep" if where == "." else f"sweep `{where}`"
        axes = " x ".join(plan.axes) or "no swept values"
        found = f"expected {plan.expected_jobs or unknown} jobs, found {plan.found_jobs} job dirs"
        lines.append(f"- {where} ({axes}): {found}")
    jobs_markdown = "\n".join(["## Missing or failed jobs", "", *lines])
    report = Report(results, cells, table, table_markdown, jobs_markdown)
    out_dir = Path(out_dir) if out_dir is not None else results.root / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        done = results.jobs[results.jobs.succeeded & labels.notna()]  # a mean confusion each
        for i, (label, jobs) in enumerate(done.groupby(labels[done.index], sort=False)):
            matrix, classes = tables.mean_confusion(jobs)
            name = re.sub(r"[^A-Za-z0-9.=-]+", "_", label).strip("_")[:80] or "run"
            path = out_dir / f"confusion_{i:02d}_{name}.png"
            title = f"{label}\nmean of {len(jobs)} row-normalised clip confusions"
            report.files[f"confusion {label}"] = plot_confusion_matrix(matrix, classes, path, title)
        if not (shown := cells.query("metric in @tables.PAPER_METRICS and n > 0")).empty:
            columns = list(dict.fromkeys(shown.index.get_level_values("column")))
            wide = shown.unstack("column").reindex(tables.PAPER_METRICS)
            means = wide["mean"].dropna(how="all")[columns]
            stds = wide["std"].loc[means.index, columns]
            hatched = [c.startswith("paper: ") for c in columns]
            title = "accuracies per configuration (error bars: sample std; hatched: the paper)"
            path = out_dir / "accuracies.png"
            report.files["accuracies"] = plot_accuracy_bars(means, stds, path, hatched, title)
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
    parser.add_argument("--out", type=Path, help="default: SWEEP_DIR/report")
    parser.add_argument("--compare-paper", action="store_true", help="add the paper's columns")
    parser.add_argument("--over", default=",".join(REPETITION_KEYS), help="keys pooled in a column")
    args = parser.parse_args(argv)
    over = tuple(key.strip() for key in args.over.split(",") if key.strip())
    try:
        outputs = output_root()
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
