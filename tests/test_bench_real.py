"""Real speech (../shared/data/emodb-2s): the bench end to end, and frozen YAMNet on unseen
speakers. Both are slow and skip when the shared corpus is absent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.segser_cli import run_segser

REPO = Path(__file__).resolve().parents[1]
EMODB_2S = REPO.parent / "shared" / "data" / "emodb-2s"
needs_emodb = pytest.mark.skipif(not EMODB_2S.is_dir(), reason=f"{EMODB_2S} not found")


@pytest.mark.slow
@needs_emodb
def test_bench_real_quick_writes_one_table_with_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench_real.md"
    done = subprocess.run(
        [sys.executable, "experiments/bench_real.py", "--quick", "--corpora", "emodb",
         "--work", str(tmp_path / "w"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.strip("| ").split(" | ") for line in out.read_text().splitlines()]
    header = lines[0]
    rows = {cells[1]: dict(zip(header, cells, strict=False)) for cells in lines if len(cells) > 2}
    for peer in ("eGeMAPS + linear SVM (peer)", "eGeMAPS + RBF SVM (peer)"):
        ua, wa = (float(rows[peer][name].split(" ± ")[0]) for name in ("UA", "WA"))
        assert 0.4 < ua <= 1.0 and 0.4 < wa <= 1.0  # far above chance (0.25) on unseen speakers
    for name in bench_rows():
        values = [float(rows[name][m].split(" ± ")[0]) for m in ("SA", "UA", "WA", "pooled_UA")]
        assert all(0.0 <= v <= 1.0 for v in values), name


def bench_rows() -> list[str]:
    sys.path.insert(0, str(REPO / "experiments"))
    from bench_real import ROWS

    return list(ROWS)


@pytest.mark.slow
@needs_emodb
def test_frozen_yamnet_beats_chance_clearly_on_unseen_emodb_speakers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_segser(
        "segser.train", "dataset=emodb", f"dataset.root={EMODB_2S}", "split=speaker_folds",
        "split.fold=1", "segmentation=nonoverlap", "backbone=yamnet", "backbone.freeze=true",
        "optimizer.lr=1e-3", "trainer.max_epochs=12", "callbacks.progress_bar=null",
        f"hydra.run.dir={run}", tmp_path=tmp_path, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    test_speakers = {clip[:2] for clip in json.loads((run / "split.json").read_text())["test"]}
    assert test_speakers == {"03", "11"}  # fold 1 of 4: trained without these speakers
    # chance is 0.25 (UA) and the majority class (angry) is under 0.4 of the test clips
    assert metrics["metrics"]["UA"] > 0.5
    assert metrics["metrics"]["WA"] > 0.5


def test_the_recipe_row_is_called_a_development_estimate_in_the_bench_and_results() -> None:
    """Issue 26.5: the search that chose the recipe used the bench's own speakers and folds."""
    sys.path.insert(0, str(REPO / "experiments"))
    from bench_real import RECIPE

    assert "development estimate" in RECIPE
    page = (REPO / "docs" / "results.md").read_text()  # moved out of README.md (issue 27)
    results = page[page.index("**The real-speech recipe on unseen speakers") :]
    header = " ".join(results[: results.index("| corpus |")].split())
    assert "development estimate" in header
    assert f"| {RECIPE} |" in results


def test_a_lever_helps_only_below_the_fold_spread_at_every_seed() -> None:
    """A lever 'helps' when switching it off lowers UA by more than the fold-to-fold spread of
    the paired differences, at every seed; one seed or a change within the spread does not."""
    sys.path.insert(0, str(REPO / "experiments"))
    from bench_real import RECIPE, lever_table

    def runs(ua_by_seed: dict[int, list[float]]) -> list[dict]:
        return [
            {"UA": ua, "seed": seed, "fold": fold + 1}
            for seed, values in ua_by_seed.items()
            for fold, ua in enumerate(values)
        ]

    recipe = runs({0: [0.80, 0.70, 0.90], 1: [0.82, 0.72, 0.88]})
    clear = runs({0: [0.70, 0.61, 0.79], 1: [0.71, 0.60, 0.79]})  # -0.1 every fold
    noisy = runs({0: [0.85, 0.60, 0.88], 1: [0.70, 0.75, 0.90]})  # mean lower, spread larger
    results = {("c", RECIPE): recipe, ("c", "- clear"): clear, ("c", "- noisy"): noisy}
    rows = {line.split(" | ")[1]: line for line in lever_table(results).splitlines()[2:]}
    assert rows["- clear"].endswith("| yes |") and rows["- noisy"].endswith("| no |")
    one_seed = {key: [r for r in value if r["seed"] == 0] for key, value in results.items()}
    assert lever_table(one_seed).splitlines()[2].endswith("| one seed only |")
