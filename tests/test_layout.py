"""The package's shape as a newcomer reads it: few top-level modules, short files, no module that
imports the train entry point, and a config that composes after a bare `import segser`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segser"
ENTRY_POINTS = ("train", "evaluate", "report", "search", "predict")
MAX_TOP_LEVEL_MODULES = 6
MAX_FILE_LINES = 300
MAX_TRAIN_LINES = 150  # train.py reads top to bottom: compose, build, fit, test, write


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, by its absolute name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_top_level_holds_the_entry_points_and_few_other_modules() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
    assert set(ENTRY_POINTS) - {"predict"} <= set(modules)
    assert (PACKAGE / "predict" / "__main__.py").is_file()  # predict is a package


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_over_the_line_limit(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_FILE_LINES


def test_train_entry_point_is_thin() -> None:
    assert len((PACKAGE / "train.py").read_text().splitlines()) < MAX_TRAIN_LINES


def test_no_module_imports_the_train_entry_point() -> None:
    importers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "train.py" and "segser.train" in imported_modules(path)
    ]
    assert importers == []


def test_compose_works_after_a_bare_import_of_segser() -> None:
    """A notebook's `import segser` then Hydra's compose: the config's resolvers are registered."""
    code = (
        "import segser\n"
        "from hydra import compose, initialize_config_dir\n"
        "from segser.setup.entry import CONF_DIR\n"
        "with initialize_config_dir(config_dir=CONF_DIR, version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['experiment=demo'])\n"
        "print(cfg.training.mode, cfg.optimizer.lr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    mode, lr = done.stdout.split()
    assert mode in ("frozen", "fine_tune") and float(lr) > 0
