"""The sweep report on hand-written sweep dirs: grouping, mean/std/n, missing jobs, files, CLI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from segser.errors import SegserError
from segser.report import build_report, main
from segser.runs.sweeps import configurations, load_results, newest_sweep, sweep_plan
from segser.runs.tables import PAPER_TABLES, mean_confusion
from tests.segser_cli import run_segser

PAPER_TXT = Path(__file__).resolve().parents[2] / "shared" / "paper.txt"
CLASSES = ["angry", "happy", "sad", "neutral"]
# Jobs 0-2: overlap, seeds 0-2; job 3: nonoverlap seed 0; job 4 failed; job 5 left nothing.
OVERLAP_CONFUSIONS = [
    [[2, 0, 0, 0], [0, 1, 1, 0], [0, 0, 3, 1], [0, 0, 0, 0]],
    [[1, 1, 0, 0], [0, 4, 0, 0], [0, 0, 1, 0], [0, 0, 0, 2]],
    [[0, 0, 0, 4], [0, 2, 0, 0], [0, 0, 0, 2], [0, 0, 0, 0]],
]
NONOVERLAP_CONFUSION = [[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 4]]


def metrics(sa: float, alca: float, **others: float) -> dict[str, float]:
    values = {"SA": sa, "ACA": 0.1, "SCA": 0.5, "ALCA": alca, "BCA": 0.7, "UA": 0.6, "WA": 0.62}
    return {**values, **others}


def write_job(
    job_dir: Path,
    overrides: list[str] | None,
    scores: dict[str, float] | None = None,
    confusion: list[list[int]] | None = None,
    segmentation: str = "overlap",
    units: int = 200,
    error: str | None = None,
) -> Path:
    """A job dir as segser.train leaves it (metrics.json only when scores are given)."""
    job_dir.mkdir(parents=True)
    if overrides is not None:
        (job_dir / ".hydra").mkdir()
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if scores is not None:
        config = {
            "segmentation": {"name": segmentation, "window_seconds": 1.0},
            "head": {"units": units},
            "backbone": {"name": "vggish"},
            "dataset": {"name": "iemocap"},
            "split": {"name": "random"},
        }
        payload = {
            "metrics": scores,
            "per_class_recall": dict.fromkeys(CLASSES, 0.5),
            "confusion_matrix": confusion,
            "classes": CLASSES,
            "num_test_clips": int(np.sum(confusion)),
            "num_test_segments": 99,
            "split": {"name": "random"},
            "best_checkpoint": str(job_dir / "checkpoints" / "best.ckpt"),
            "epochs_trained": 3,
            "config": config,
        }
        (job_dir / "metrics.json").write_text(json.dumps(payload))
    if error is not None:
        (job_dir / "error.txt").write_text(error + "\n")
    return job_dir


def write_multirun_yaml(sweep: Path, task: list[str], params: dict | None = None) -> None:
    hydra = {
        "sweeper": {
            "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
            "max_batch_size": None,
            "params": params,
        },
        "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": task},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "seed": 0}))


def build_sweep(sweep: Path) -> Path:
    """The 2 x 3 sweep above: 4 jobs with metrics, 1 failed with error.txt, 1 with nothing."""
    sweep.mkdir(parents=True)
    write_multirun_yaml(sweep, ["segmentation=overlap,nonoverlap", "head.units=200", "seed=0,1,2"])
    for seed, (sa, alca) in enumerate([(0.50, 0.60), (0.52, 0.70), (0.54, 0.65)]):
        overrides = ["segmentation=overlap", "head.units=200", f"seed={seed}"]
        write_job(sweep / str(seed), overrides, metrics(sa, alca), OVERLAP_CONFUSIONS[seed])
    nonoverlap = ["segmentation=nonoverlap", "head.units=200"]
    write_job(
        sweep / "3",
        [*nonoverlap, "seed=0"],
        metrics(0.56, 0.55),
        NONOVERLAP_CONFUSION,
        segmentation="nonoverlap",
    )
    write_job(sweep / "4", [*nonoverlap, "seed=1"], error="/data/x.wav: not a wav file. Fix it")
    (sweep / "5").mkdir()  # crashed before Hydra wrote anything
    return sweep


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return build_sweep(tmp_path / "multirun" / "2026-11-25" / "01-02-03")


def grouped(jobs, over=("seed", "split.fold")) -> dict[str, list[str]]:
    """configuration label -> names of its jobs, in order of first appearance."""
    labels, _ = configurations(jobs, over)
    groups: dict[str, list[str]] = {}
    for name, label in zip(jobs.name, labels, strict=True):
        if label is not None:
            groups.setdefault(label, []).append(name)
    return groups


def test_jobs_group_by_overrides_without_seed(sweep: Path) -> None:
    results = load_results(sweep)
    assert list(results.jobs.name) == ["0", "1", "2", "3", "4", "5"]
    assert grouped(results.jobs) == {
        "segmentation=overlap": ["0", "1", "2"],
        "segmentation=nonoverlap": ["3", "4"],
    }
    assert list(results.jobs[results.jobs.succeeded].name) == ["0", "1", "2", "3"]
    assert list(results.missing.name) == ["4", "5"]
    separate = grouped(results.jobs, over=())
    assert len(separate) == 5  # job 5 has no overrides: it cannot be placed in any column


def test_loso_folds_and_plus_prefixed_seeds_are_pooled(tmp_path: Path) -> None:
    sweep = tmp_path / "loso"
    for i, fold in enumerate([1, 2, 3]):
        overrides = ["experiment=loso", f"split.fold={fold}", "+seed=7"]
        write_job(sweep / str(i), overrides, metrics(0.5, 0.6 + 0.1 * i), NONOVERLAP_CONFUSION)
    assert grouped(load_results(sweep).jobs) == {"experiment=loso": ["0", "1", "2"]}
    report = build_report(sweep)
    assert report.table.loc["ALCA", "experiment=loso"] == "0.700 +- 0.100 (3)"


def test_speaker_folds_pool_into_one_configuration(tmp_path: Path) -> None:
    """K speaker folds x 2 seeds of one setting: one column, mean +- std over all 2K jobs."""
    sweep, alcas = tmp_path / "folds", []
    for i, (fold, seed) in enumerate((f, s) for f in (1, 2, 3) for s in (0, 1)):
        overrides = ["split=speaker_folds", "head.units=100", f"split.fold={fold}", f"seed={seed}"]
        alcas.append(0.5 + 0.05 * i)
        write_job(sweep / str(i), overrides, metrics(0.5, alcas[-1]), NONOVERLAP_CONFUSION)
    assert grouped(load_results(sweep).jobs) == {
        "split=speaker_folds head.units=100": ["0", "1", "2", "3", "4", "5"]
    }
    cells = build_report(sweep).cells.loc[("split=speaker_folds head.units=100", "ALCA")]
    assert cells["mean"] == pytest.approx(np.mean(alcas))
    assert cells["std"] == pytest.approx(np.std(alcas, ddof=1))
    assert cells["n"] == 6


def test_cells_are_mean_sample_std_and_n(sweep: Path, tmp_path: Path) -> None:
    report = build_report(sweep, tmp_path / "out")
    assert list(report.table.index) == ["SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA"]
    assert list(report.table.columns) == ["segmentation=overlap", "segmentation=nonoverlap"]
    overlap = report.cells.loc["segmentation=overlap"]
    assert overlap.loc["ALCA", "mean"] == pytest.approx(0.65)
    assert overlap.loc["ALCA", "std"] == pytest.approx(0.05)  # sqrt((0.05^2 + 0.05^2) / 2)
    assert overlap.loc["SA", "std"] == pytest.approx(0.02)
    assert overlap.loc["ALCA", "n"] == 3
    assert report.table.loc["ALCA", "segmentation=overlap"] == "0.650 +- 0.050 (3)"
    # n = 1: std shown as '-'
    assert report.table.loc["ALCA", "segmentation=nonoverlap"] == "0.550 +- - (1)"


def test_markdown_and_csv_hold_the_table_and_the_missing_jobs(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_report(sweep, out)
    markdown = (out / "report.md").read_text()
    rows = markdown_rows(markdown)
    assert rows["metric"] == ["segmentation=overlap", "segmentation=nonoverlap"]
    assert rows["ALCA"] == ["0.650 +- 0.050 (3)", "0.550 +- - (1)"]
    assert rows["SA"] == ["0.520 +- 0.020 (3)", "0.560 +- - (1)"]
    assert "Shared by all columns: head.units=200" in markdown
    assert "- `4`: failed: /data/x.wav: not a wav file. Fix it" in markdown
    assert "- `5`: no metrics.json and no error.txt" in markdown
    assert "expected 6 jobs, found 6 job dirs" in markdown
    assert "4 of 6 jobs wrote metrics.json" in markdown
    with open(out / "report.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["metric", "segmentation=overlap", "segmentation=nonoverlap"]
    assert [r[0] for r in rows[1:]] == ["SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA"]
    assert rows[4] == ["ALCA", "0.650 +- 0.050 (3)", "0.550 +- - (1)"]


def test_plots_are_written(sweep: Path, tmp_path: Path) -> None:
    report = build_report(sweep, tmp_path / "out")
    assert [p.name for p in report.confusion_plots] == [
        "confusion_00_segmentation=overlap.png",
        "confusion_01_segmentation=nonoverlap.png",
    ]
    for path in [*report.confusion_plots, report.files["accuracies"]]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
    assert "![accuracies](accuracies.png)" in (tmp_path / "out" / "report.md").read_text()


def test_mean_confusion_averages_row_normalised_matrices(sweep: Path) -> None:
    jobs = load_results(sweep).jobs
    matrix, classes = mean_confusion(jobs[jobs.name.isin(["0", "1", "2"])])
    assert classes == CLASSES
    expected = [  # by hand: each job's rows divided by their totals, then averaged over jobs
        [1.5 / 3, 0.5 / 3, 0.0, 1.0 / 3],
        [0.0, 2.5 / 3, 0.5 / 3, 0.0],
        [0.0, 0.0, 1.75 / 3, 1.25 / 3],
        [0.0, 0.0, 0.0, 1.0],  # only job 1 tested a neutral clip
    ]
    np.testing.assert_allclose(matrix, expected)


def test_expected_job_count_reads_sweeper_params_and_task_overrides(tmp_path: Path) -> None:
    write_multirun_yaml(
        tmp_path, ["experiment=paper_table4", "head.units=100,400"], {"head.units": "1,2,3"}
    )
    plan = sweep_plan(tmp_path / "multirun.yaml", found_jobs=0)
    assert plan.expected_jobs == 2  # the command line's head.units wins over the preset's
    write_multirun_yaml(tmp_path, ["+x=range(0,4)"], {"seed": "0,1,2", "segmentation": "a,b"})
    assert sweep_plan(tmp_path / "multirun.yaml", 0).expected_jobs == 24
    write_multirun_yaml(tmp_path, ["optimizer.lr=interval(0.001,0.1)"])
    assert sweep_plan(tmp_path / "multirun.yaml", 0).expected_jobs is None


def test_missing_job_dirs_show_as_fewer_found(sweep: Path, tmp_path: Path) -> None:
    (sweep / "5").rmdir()
    report = build_report(sweep, tmp_path / "out")
    assert "expected 6 jobs, found 5 job dirs" in report.jobs_markdown


def test_a_sweep_where_every_job_failed_still_reports(tmp_path: Path) -> None:
    sweep = tmp_path / "failed"
    sweep.mkdir()
    write_multirun_yaml(sweep, ["seed=0,1"])
    for seed in (0, 1):
        write_job(sweep / str(seed), [f"seed={seed}"], error=f"crashed: RuntimeError: {seed}")
    report = build_report(sweep, tmp_path / "out")
    assert markdown_rows(report.table_markdown)["ALCA"] == ["-"]
    assert "- `1`: crashed: RuntimeError: 1" in report.jobs_markdown
    assert report.confusion_plots == [] and "accuracies" not in report.files
    assert "0 of 2 jobs wrote metrics.json; the sweep expected 2 jobs." in report.table_markdown


def markdown_rows(markdown: str) -> dict[str, list[str]]:
    """A Markdown table's rows by their first cell (padding and the |---| rule dropped)."""
    rows = [line.strip("|").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    return {row[0].strip(): [c.strip() for c in row[1:]] for row in rows}


def test_compare_paper_puts_the_papers_columns_beside_ours(sweep: Path, tmp_path: Path) -> None:
    report = build_report(sweep, tmp_path / "out", compare_paper=True)
    names = list(report.table.columns)
    assert names == [
        "segmentation=overlap",
        "paper: overlap N=200",
        "segmentation=nonoverlap",
        "paper: nonoverlap N=200",
        "paper: overlap N=100",
        "paper: overlap N=400",
    ]
    assert report.table.loc["ALCA", names[1]] == "0.687 +- 0.019 (6)"
    assert report.table.loc["ACA", names[3]] == "0.196 +- 0.010 (6)"
    assert report.table.loc["UA", names[1]] == "-"  # the paper reports no UA
    with open(tmp_path / "out" / "report.csv", newline="") as handle:
        rows = {row[0]: row for row in csv.reader(handle)}
    assert rows["ALCA"][2] == "0.687 +- 0.019 (6)"
    assert rows["UA"][2] == "-"
    markdown = report.markdown
    assert "matches `paper: overlap N=200`, Table 3 'Overlapping Seg.' = Table 4 'N = 200'" in (
        markdown
    )
    assert "`paper: overlap N=400` (Table 4 'N = 400'): no configuration here" in markdown


def test_paper_numbers_match_the_paper_text() -> None:
    if not PAPER_TXT.is_file():
        pytest.skip(f"{PAPER_TXT} is absent")
    rows = re.findall(r"^\| (SA|ACA|SCA|ALCA|BCA) \|(.*)\|$", PAPER_TXT.read_text(), re.M)
    printed = [(m, re.findall(r"(\d\.\d+) ± (\d\.\d+)", cells)) for m, cells in rows]
    assert len(printed) == 10  # Table 3's five rows, then Table 4's
    with open(PAPER_TABLES, newline="", encoding="utf-8") as handle:
        ours = list(csv.DictReader(handle))
    for table, block in zip(["Table 3", "Table 4"], [printed[:5], printed[5:]], strict=True):
        columns = [row for row in ours if row["source"].startswith(table)]
        for metric, pairs in block:
            assert [tuple(row[metric].split(" ± ")) for row in columns] == pairs, (table, metric)


def test_a_single_run_dir_and_a_folder_of_sweeps(sweep: Path, tmp_path: Path) -> None:
    run = write_job(
        tmp_path / "runs" / "r1", ["experiment=demo"], metrics(0.4, 0.45), NONOVERLAP_CONFUSION
    )
    single = build_report(run, tmp_path / "single")
    assert list(single.table.columns) == ["experiment=demo"]
    assert single.table.loc["ALCA", "experiment=demo"] == "0.450 +- - (1)"
    assert single.results.plans == []
    build_sweep(tmp_path / "multirun" / "2026-11-26" / "09-00-00")
    both = build_report(tmp_path / "multirun", tmp_path / "both")
    assert len(both.results.plans) == 2
    assert both.cells.loc[("segmentation=overlap", "ALCA"), "n"] == 6  # both sweeps: pooled
    assert newest_sweep(tmp_path / "multirun").name == "09-00-00"


def test_main_prints_the_table(sweep: Path, tmp_path: Path, capsys) -> None:
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--over", "seed"]) == 0
    printed = markdown_rows(capsys.readouterr().out)
    assert printed["ALCA"] == ["0.650 +- 0.050 (3)", "0.550 +- - (1)"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {empty}: no job directories")
    with pytest.raises(SegserError, match="no sweep in it"):
        newest_sweep(empty)


def run_report(*args: str) -> subprocess.CompletedProcess:
    return run_segser("segser.report", *args, timeout=120, extra_env={"MPLBACKEND": "Agg"})


@pytest.mark.parametrize("problem", ["missing dir", "broken metrics.json"])
def test_cli_bad_input_is_one_line(problem: str, sweep: Path, tmp_path: Path) -> None:
    if problem == "missing dir":
        target, named = tmp_path / "no_such_sweep", tmp_path / "no_such_sweep"
    else:
        target, named = sweep, sweep / "1" / "metrics.json"
        named.write_text('{"metrics": {"SA": 0.5,')
    result = run_report(str(target))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {named}: ")


def test_report_without_a_sweep_dir_takes_the_newest_under_segser_output_dir(
    tmp_path: Path,
) -> None:
    outputs = tmp_path / "outputs"
    env = {"SEGSER_OUTPUT_DIR": str(outputs), "MPLBACKEND": "Agg"}
    result = run_segser("segser.report", "--compare-paper", timeout=120, extra_env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {outputs / 'multirun'}: no sweep in it")
    build_sweep(outputs / "multirun" / "2026-11-25" / "01-02-03")
    newest = build_sweep(outputs / "multirun" / "2026-11-26" / "09-00-00")
    result = run_segser("segser.report", timeout=120, extra_env=env)
    assert result.returncode == 0, result.stderr
    assert (newest / "report" / "report.md").is_file()
    assert not (outputs / "multirun" / "2026-11-25" / "01-02-03" / "report").exists()


def test_make_report_leaves_finding_the_sweep_to_the_command(tmp_path: Path) -> None:
    """`make report` passes SWEEP_DIR only when given, so SEGSER_OUTPUT_DIR is honoured."""
    repo = Path(__file__).resolve().parents[1]
    # a stamp newer than pyproject.toml: make -n prints the recipe and installs nothing (with
    # STAMP=Makefile, make remakes its own makefile even under -n when pyproject.toml is newer)
    stamp = tmp_path / "stamp"
    stamp.touch()
    dry = ["make", "-s", "-n", "-C", str(repo), "report", f"STAMP={stamp}"]
    recipe = subprocess.run(dry, capture_output=True, text=True, check=True).stdout.split()
    assert recipe[-3:] == ["-m", "segser.report", "--compare-paper"]
    given = subprocess.run([*dry, "SWEEP_DIR=x/y"], capture_output=True, text=True, check=True)
    assert given.stdout.split()[-3:] == ["segser.report", "x/y", "--compare-paper"]
