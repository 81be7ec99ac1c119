"""The numbers of a results table: mean +- std (n) per metric and configuration, and the paper's."""

from __future__ import annotations

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
PAPER_TABLES = Path(__file__).with_name("paper_tables.csv")  # Tables 3 and 4 with settings


def summarise(jobs: pd.DataFrame, labels: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """Mean, sample std (ddof=1) and n by (column, metric); the metrics, the paper's five first."""
    found = [c.removeprefix("metrics.") for c in jobs.columns if c.startswith("metrics.")]
    metrics = sorted(found, key=lambda m: (*PAPER_METRICS, m).index(m)) or list(PAPER_METRICS)
    placed = jobs.succeeded & labels.notna()
    values = jobs[placed].reindex(columns=[f"metrics.{m}" for m in metrics]).astype(float)
    values = values.set_axis(metrics, axis=1).replace([np.inf, -np.inf], np.nan)
    stats = values.groupby(labels[placed]).agg(["mean", "std", "count"]).stack(level=0)
    full = pd.MultiIndex.from_product([list(dict.fromkeys(labels.dropna())), metrics])
    stats = stats.rename(columns={"count": "n"}).reindex(full, columns=["mean", "std", "n"])
    return stats.fillna({"n": 0}).rename_axis(["column", "metric"]), metrics


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
    with np.errstate(invalid="ignore"):  # a row without clips: NaN, left out of the mean
        rows = stacked / stacked.sum(axis=2, keepdims=True)
    mean = pd.DataFrame(rows.reshape(len(rows), -1)).mean().to_numpy()
    return mean.reshape(rows.shape[1:]), list(classes)


def compare_with_paper(
    cells: pd.DataFrame, jobs: pd.DataFrame, labels: pd.Series
) -> tuple[pd.DataFrame, list[str]]:
    """Ours with each matching paper column beside it; unmatched paper columns at the end."""
    printed = pd.read_csv(PAPER_TABLES, encoding="utf-8")
    printed["column"] = "paper: " + printed.segmentation + " N=" + printed.units.astype(str)
    first = {"segmentation": "first", "units": "first", "source": " = ".join}
    settings = printed.groupby("column", sort=False).agg(first)
    stacked = printed.drop_duplicates("column").set_index("column")[list(PAPER_METRICS)].stack()
    paper = stacked.str.split(" ± ", expand=True).astype(float).set_axis(["mean", "std"], axis=1)
    done = jobs[jobs.succeeded].assign(column=labels[jobs.succeeded])
    order, notes = [], [f"Paper columns: {PAPER_PROTOCOL}."]
    for job in done.drop_duplicates("column").to_dict("records"):
        order.append(job["column"])
        units = pd.to_numeric(job.get("config.head.units"), errors="coerce")  # NaN-holed: float
        same = settings.segmentation == job.get("config.segmentation.name")
        match = settings.index[same & (settings.units == units)]
        if match.empty or job.get("config.backbone.name", "vggish") != "vggish":
            continue
        ours = f"dataset={job.get('config.dataset.name', '?')}, split={job.get('split.name', '?')}"
        name = match[0]
        notes.append(f"`{job['column']}` matches `{name}`, {settings.source[name]} (ours: {ours}).")
        order += [] if name in order else [name]
    for name, s in settings.drop(order, errors="ignore").iterrows():
        order.append(name)
        notes.append(
            f"`{name}` ({s.source}): no configuration here has segmentation={s.segmentation}, "
            f"head.units={s.units} on VGGish; added as an extra column."
        )
    order += [c for c in dict.fromkeys(cells.index.get_level_values(0)) if c not in order]
    paper = paper.assign(n=PAPER_RUNS).rename_axis(["column", "metric"])
    return pd.concat([cells, paper]).loc[order], notes
