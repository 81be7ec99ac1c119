"""The numbers of a results table: mean +- std per metric and configuration, and the paper's.

Cells are a long table indexed by (column, metric) with mean, sample std (ddof=1) and n; the
paper's Tables 3 and 4 join as columns matched to ours by setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segser.errors import SegserError

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


def read_paper_table(text: str) -> dict[str, dict[str, tuple[float, float]]]:
    """column -> metric -> (mean, std) from a table printed as `| metric | m ± s | ... |`."""
    header, *rows = (
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.strip().splitlines()
    )
    return {
        name: {row[0]: tuple(map(float, row[i].split("±"))) for row in rows}
        for i, name in enumerate(header[1:], start=1)
    }


def paper_cells() -> tuple[pd.DataFrame, dict[tuple[str, int], str]]:
    """The paper's cells, one column per distinct setting, and where each setting is printed."""
    sources: dict[tuple[str, int], list[str]] = {}
    rows = []
    for table, text in PAPER_TABLES.items():
        for name, values in read_paper_table(text).items():
            setting = PAPER_SETTINGS[(table, name)]
            column = f"paper: {setting[0]} N={setting[1]}"
            if setting not in sources:
                rows += [(column, m, mean, std, PAPER_RUNS) for m, (mean, std) in values.items()]
            sources.setdefault(setting, []).append(f"{table} '{name}'")
    cells = pd.DataFrame(rows, columns=["column", "metric", "mean", "std", "n"])
    return cells.set_index(["column", "metric"]), {s: " = ".join(v) for s, v in sources.items()}


def metric_names(jobs: pd.DataFrame) -> list[str]:
    """The paper's five accuracies first, then whatever else metrics.json holds (UA, WA)."""
    found = [c.removeprefix("metrics.") for c in jobs.columns if c.startswith("metrics.")]
    if not found:
        return list(PAPER_METRICS)  # nothing finished yet: the paper's rows, all '-'
    return [m for m in PAPER_METRICS if m in found] + [m for m in found if m not in PAPER_METRICS]


def summarise(jobs: pd.DataFrame, labels: pd.Series, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count of each metric over each configuration's jobs."""
    placed = jobs.succeeded & labels.notna()
    values = jobs[placed].reindex(columns=[f"metrics.{m}" for m in metrics]).astype(float)
    values = values.set_axis(metrics, axis=1).replace([np.inf, -np.inf], np.nan)
    stats = values.groupby(labels[placed]).agg(["mean", "std", "count"]).stack(level=0)
    full = pd.MultiIndex.from_product([list(dict.fromkeys(labels.dropna())), metrics])
    stats = stats.rename(columns={"count": "n"}).reindex(full, columns=["mean", "std", "n"])
    return stats.fillna({"n": 0}).rename_axis(["column", "metric"])


def cell_text(mean: float, std: float, n: float) -> str:
    if not n or np.isnan(mean):
        return "-"
    return f"{mean:.3f} +- {'-' if np.isnan(std) else f'{std:.3f}'} ({int(n)})"


def text_table(cells: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Metrics down, columns across, `mean +- std (n)` in each cell ('-' where nothing is)."""
    text = pd.Series([cell_text(*row) for row in cells[["mean", "std", "n"]].to_numpy()])
    columns = list(dict.fromkeys(cells.index.get_level_values("column")))
    table = text.set_axis(cells.index).unstack("column").reindex(list(metrics), columns=columns)
    return table.fillna("-").rename_axis("metric")


def mean_confusion(jobs: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Average of the jobs' row-normalised clip confusions (a class no job tested stays NaN)."""
    classes = jobs.classes.iloc[0]
    for path, other in zip(jobs.path, jobs.classes, strict=True):
        if other != classes:
            raise SegserError(
                f"{path / 'metrics.json'}: classes {other} differ from {classes} in "
                f"{jobs.path.iloc[0]}. Report runs with different classes separately."
            )
    stacked = np.array(jobs.confusion_matrix.tolist(), dtype=float)
    totals = stacked.sum(axis=2, keepdims=True)
    normalised = np.divide(stacked, totals, out=np.full_like(stacked, np.nan), where=totals > 0)
    counts = (~np.isnan(normalised)).sum(axis=0)
    mean = np.divide(np.nansum(normalised, axis=0), counts, where=counts > 0, out=counts * np.nan)
    return mean, list(classes)


def compare_with_paper(
    cells: pd.DataFrame, jobs: pd.DataFrame, labels: pd.Series
) -> tuple[pd.DataFrame, list[str]]:
    """Ours with each matching paper column beside it; unmatched paper columns at the end."""
    paper, sources = paper_cells()
    done = jobs[jobs.succeeded].assign(column=labels[jobs.succeeded])
    done = done.drop_duplicates("column").set_index("column")
    order, notes, placed = [], [f"Paper columns: {PAPER_PROTOCOL}."], set()
    for column in dict.fromkeys(cells.index.get_level_values("column")):
        order.append(column)
        if column not in done.index:
            continue
        job = done.loc[column]
        units = pd.to_numeric(job.get("config.head.units"), errors="coerce")  # NaN-holed: float
        matches = [s for s in sources if s == (job.get("config.segmentation.name"), units)]
        if not matches or job.get("config.backbone.name", "vggish") != "vggish":
            continue
        name = f"paper: {matches[0][0]} N={matches[0][1]}"
        ours = f"dataset={job.get('config.dataset.name', '?')}, split={job.get('split.name', '?')}"
        notes.append(f"`{column}` matches `{name}`, {sources[matches[0]]} (ours: {ours}).")
        order += [] if name in placed else [name]
        placed.add(name)
    for (segmentation, units), source in sources.items():
        name = f"paper: {segmentation} N={units}"
        if name not in placed:
            order.append(name)
            notes.append(
                f"`{name}` ({source}): no configuration here has segmentation={segmentation}, "
                f"head.units={units} on VGGish; added as an extra column."
            )
    return pd.concat([cells, paper]).loc[order], notes
