"""notebooks/results.ipynb runs top to bottom on a sweep dir and a predict dir (nbclient)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from tests.test_report import build_sweep, markdown_rows

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "results.ipynb"


def write_predict_dir(directory: Path) -> Path:
    """What segser.predict leaves for one file: a segments CSV and a timeline PNG."""
    directory.mkdir()
    with open(directory / "03a01Wa.segments.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["segment", "start_s", "end_s", "prediction", "p_angry", "p_sad"])
        writer.writerow([0, 0.0, 1.0, "angry", 0.8, 0.2])
        writer.writerow([1, 0.5, 1.5, "sad", 0.3, 0.7])
    plt.imsave(directory / "03a01Wa.timeline.png", np.linspace(0, 1, 64).reshape(8, 8))
    return directory


def test_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_shows_table_figures_and_timeline(tmp_path: Path, monkeypatch) -> None:
    sweep = build_sweep(tmp_path / "multirun" / "2026-11-25" / "01-02-03")
    monkeypatch.setenv("SEGSER_SWEEP_DIR", str(sweep))
    monkeypatch.setenv("SEGSER_PREDICT_DIR", str(write_predict_dir(tmp_path / "predict")))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    markdown = "\n".join(
        o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})
    )
    assert markdown_rows(markdown)["ALCA"][:3] == [
        "0.650 +- 0.050 (3)",
        "0.687 +- 0.019 (6)",
        "0.550 +- - (1)",
    ]
    assert "- `4`: failed: /data/x.wav: not a wav file. Fix it" in markdown
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # 2 mean confusion matrices + the accuracy bars + the timeline PNG + the segments plot
    assert len(images) == 5
    assert (sweep / "report" / "report.md").is_file()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
