"""The numbers of a results table: mean +- std per metric and configuration, and the paper's.

Cells are a long table indexed by (column, metric) with mean, sample std (ddof=1) and n; the
paper's Tables 3 and 4 join as columns matched to ours by setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from segser.errors import SegserError

PAPER_METRICS = ("SA", "ACA", "SCA", "ALCA", "BCA")  # the paper's rows, in its order
PAPER_RUNS = 6  # section 4.4: "trained and evaluated six times"
PAPER_PROTOCOL = (
    "IEMOCAP 4 classes, random 8:1:1 split of clips, VGGish + one hidden layer of N units, "
    f"mean +- std over {PAPER_RUNS} runs; UA and WA not reported"
)
# The paper's Tables 3 and 4 as printed (section 4.4), a row per printed column, with its
# setting (VGGish, segmentation, head units); Table 4's N = 200 repeats Table 3's overlapping runs.
PAPER_TABLES = Path(__file__).with_name("paper_tables.csv")


def paper_cells() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's cells, a column per distinct setting; each setting and where it is printed."""
    printed = pd.read_csv(PAPER_TABLES, encoding="utf-8")
    printed["column"] = "paper: " + printed.segmentation + " N=" + printed.units.astype(str)
    settings = printed.groupby("column", sort=False).agg(
        segmentation=("segmentation", "first"),
        units=("units", "first"),
        source=("source", " = ".join),
    )
    stacked = printed.drop_duplicates("column").set_index("column")[list(PAPER_METRICS)].stack()
    cells = stacked.str.split(" ± ", expand=True).astype(float).set_axis(["mean", "std"], axis=1)
    return cells.assign(n=PAPER_RUNS).rename_axis(["column", "metric"]), settings


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
    paper, settings = paper_cells()
    done = jobs[jobs.succeeded].assign(column=labels[jobs.succeeded])
    order, notes = [], [f"Paper columns: {PAPER_PROTOCOL}."]
    for job in done.drop_duplicates("column").to_dict("records"):
        order.append(job["column"])
        units = pd.to_numeric(job.get("config.head.units"), errors="coerce")  # NaN-holed: float
        match = settings[(settings.segmentation == job.get("config.segmentation.name"))]
        match = match[match.units == units].index
        if match.empty or job.get("config.backbone.name", "vggish") != "vggish":
            continue
        ours = f"dataset={job.get('config.dataset.name', '?')}, split={job.get('split.name', '?')}"
        source = settings.source[match[0]]
        notes.append(f"`{job['column']}` matches `{match[0]}`, {source} (ours: {ours}).")
        order += [] if match[0] in order else [match[0]]
    for name, setting in settings.drop(order, errors="ignore").iterrows():
        order.append(name)
        notes.append(
            f"`{name}` ({setting.source}): no configuration here has segmentation="
            f"{setting.segmentation}, head.units={setting.units} on VGGish; added as an extra "
            "column."
        )
    order += [c for c in dict.fromkeys(cells.index.get_level_values(0)) if c not in order]
    return pd.concat([cells, paper]).loc[order], notes
