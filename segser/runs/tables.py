"""The numbers of a results table: mean +- std per metric and configuration, and the paper's.

Columns of cells from grouped jobs (runs.sweeps), the mean row-normalised confusion per
configuration, and the paper's Tables 3 and 4 as columns matched to ours by setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segser.errors import SegserError
from segser.runs.sweeps import Configuration, Job

PAPER_METRICS = ("SA", "ACA", "SCA", "ALCA", "BCA")  # the paper's rows, in its order
PAPER_RUNS = 6  # section 4.4: "trained and evaluated six times"
PAPER_PROTOCOL = (
    "IEMOCAP 4 classes, random 8:1:1 split of clips, VGGish + one hidden layer of N units, "
    f"mean +- std over {PAPER_RUNS} runs; UA and WA not reported"
)
# The paper's Tables 3 and 4 as printed (section 4.4), and the setting behind each column.
PAPER_TABLES = {
    "Table 3": """
        |      | Non-overlapping Seg. | Overlapping Seg. |
        | SA   | 0.564 ± 0.006 | 0.561 ± 0.011 |
        | ACA  | 0.196 ± 0.010 | 0.125 ± 0.010 |
        | SCA  | 0.559 ± 0.009 | 0.621 ± 0.019 |
        | ALCA | 0.668 ± 0.014 | 0.687 ± 0.019 |
        | BCA  | 0.707 ± 0.011 | 0.703 ± 0.017 |""",
    "Table 4": """
        |      | N = 100 | N = 200 | N = 400 |
        | SA   | 0.560 ± 0.012 | 0.561 ± 0.011 | 0.559 ± 0.017 |
        | ACA  | 0.132 ± 0.012 | 0.125 ± 0.010 | 0.131 ± 0.010 |
        | SCA  | 0.616 ± 0.017 | 0.621 ± 0.019 | 0.617 ± 0.022 |
        | ALCA | 0.684 ± 0.020 | 0.687 ± 0.019 | 0.674 ± 0.018 |
        | BCA  | 0.703 ± 0.013 | 0.703 ± 0.017 | 0.699 ± 0.020 |""",
}
PAPER_SETTINGS = {  # (table, column) -> (segmentation, head.units); all on VGGish
    ("Table 3", "Non-overlapping Seg."): ("nonoverlap", 200),
    ("Table 3", "Overlapping Seg."): ("overlap", 200),
    ("Table 4", "N = 100"): ("overlap", 100),
    ("Table 4", "N = 200"): ("overlap", 200),  # the same runs as Table 3's overlapping column
    ("Table 4", "N = 400"): ("overlap", 400),
}


@dataclass(frozen=True)
class PaperColumn:
    """One setting's numbers in the paper, and the table columns that print them."""

    sources: tuple[str, ...]
    segmentation: str
    units: int
    values: dict[str, tuple[float, float]]  # metric -> (mean, std)

    @property
    def name(self) -> str:
        return f"paper: {self.segmentation} N={self.units}"


def read_paper_table(text: str) -> dict[str, dict[str, tuple[float, float]]]:
    """column -> metric -> (mean, std) from a table printed as `| metric | m ± s | ... |`."""
    header, *rows = (
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.strip().splitlines()
    )
    table: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in header[1:]}
    for metric, *cells in rows:
        for name, value in zip(header[1:], cells, strict=True):
            mean, std = value.split("±")
            table[name][metric] = (float(mean), float(std))
    return table


def paper_columns() -> list[PaperColumn]:
    """One column per distinct setting, in the paper's order (Table 3 first)."""
    columns: dict[tuple[str, int], PaperColumn] = {}
    for table, text in PAPER_TABLES.items():
        for name, values in read_paper_table(text).items():
            setting = PAPER_SETTINGS[(table, name)]
            source = f"{table} '{name}'"
            if setting in columns:
                known = columns[setting]
                columns[setting] = PaperColumn((*known.sources, source), *setting, known.values)
            else:
                columns[setting] = PaperColumn((source,), *setting, values)
    return list(columns.values())


@dataclass(frozen=True)
class Cell:
    mean: float | None
    std: float | None  # sample std (ddof=1); None when n < 2
    n: int

    def text(self) -> str:
        if self.n == 0 or self.mean is None:
            return "-"
        std = "-" if self.std is None else f"{self.std:.3f}"
        return f"{self.mean:.3f} +- {std} ({self.n})"


EMPTY = Cell(None, None, 0)


@dataclass(frozen=True)
class Column:
    name: str
    cells: dict[str, Cell]
    from_paper: bool = False


def cell(values: Sequence[float]) -> Cell:
    """Mean, sample std (ddof=1) and count of one metric over a configuration's jobs."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return EMPTY
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return Cell(float(np.mean(values)), std, len(values))


def metric_rows(jobs: Sequence[Job]) -> list[str]:
    """The paper's five accuracies first, then whatever else metrics.json holds (UA, WA)."""
    found = [name for job in jobs if job.payload for name in job.payload["metrics"]]
    if not found:
        return list(PAPER_METRICS)  # nothing finished yet: the paper's rows, all '-'
    present = [m for m in PAPER_METRICS if m in found]
    return present + [m for m in dict.fromkeys(found) if m not in PAPER_METRICS]


def summarise(configurations: Sequence[Configuration], metrics: Sequence[str]) -> list[Column]:
    return [
        Column(
            c.label,
            {m: cell([j.payload["metrics"].get(m) for j in c.succeeded]) for m in metrics},
        )
        for c in configurations
    ]


def mean_confusion(jobs: Sequence[Job]) -> tuple[np.ndarray, list[str]]:
    """Average of the jobs' row-normalised clip confusions (a class no job tested stays NaN)."""
    classes = jobs[0].payload["classes"]
    rows = []
    for job in jobs:
        if job.payload["classes"] != classes:
            raise SegserError(
                f"{job.path / 'metrics.json'}: classes {job.payload['classes']} differ from "
                f"{classes} in {jobs[0].path}. Report runs with different classes separately."
            )
        confusion = np.asarray(job.payload["confusion_matrix"], dtype=float)
        totals = confusion.sum(axis=1, keepdims=True)
        rows.append(np.where(totals > 0, confusion / np.where(totals > 0, totals, 1.0), np.nan))
    stacked = np.stack(rows)
    counts = (~np.isnan(stacked)).sum(axis=0)
    total = np.nansum(stacked, axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan), list(classes)


def paper_match(configuration: Configuration) -> PaperColumn | None:
    """The paper column with this configuration's segmentation and head units (VGGish only)."""
    config = configuration.config()
    if (config.get("backbone") or {}).get("name", "vggish") != "vggish":
        return None
    segmentation = (config.get("segmentation") or {}).get("name")
    units = str((config.get("head") or {}).get("units"))
    for column in paper_columns():
        if (segmentation, units) == (column.segmentation, str(column.units)):
            return column
    return None


def compare_with_paper(
    columns: Sequence[Column], configurations: Sequence[Configuration]
) -> tuple[list[Column], list[str]]:
    """Ours with each matching paper column beside it; unmatched paper columns at the end."""
    merged: list[Column] = []
    notes = [f"Paper columns: {PAPER_PROTOCOL}."]
    placed: set[str] = set()
    for column, configuration in zip(columns, configurations, strict=True):
        merged.append(column)
        match = paper_match(configuration)
        if match is None:
            continue
        config = configuration.config()
        ours = ", ".join(
            f"{key}={(config.get(key) or {}).get('name', '?')}" for key in ("dataset", "split")
        )
        source = " = ".join(match.sources)
        notes.append(f"`{column.name}` matches `{match.name}`, {source} (ours: {ours}).")
        if match.name not in placed:
            merged.append(paper_column(match))
            placed.add(match.name)
    for match in paper_columns():
        if match.name not in placed:
            merged.append(paper_column(match))
            notes.append(
                f"`{match.name}` ({' = '.join(match.sources)}): no configuration here has "
                f"segmentation={match.segmentation}, head.units={match.units} on VGGish; "
                "added as an extra column."
            )
    return merged, notes


def paper_column(column: PaperColumn) -> Column:
    cells = {m: Cell(mean, std, PAPER_RUNS) for m, (mean, std) in column.values.items()}
    return Column(column.name, cells, from_paper=True)
