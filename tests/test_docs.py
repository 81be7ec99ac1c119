"""README.md and docs/ as a newcomer follows them: every `make` target, config group and option,
conf/ path and link they name exists, README stays a short front door, and its worked example of
the five accuracies is what segser computes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from segser.metrics.collection import ClipMetrics

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 250
# `name=value` in the docs' code that is neither a config group nor a top-level config key
NOT_CONFIG = {
    "weights_only": "torch.load's argument",
    "find_unused_parameters": "DistributedDataParallel's argument",
    "input": "backbone.net.input, named short beside its options",
    "context": "backbone.net.context, named short beside its options",
}


def code_spans(text: str) -> list[str]:
    """Fenced blocks and inline `code`: where commands and overrides are written."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


def doc_code(paths: list[Path]) -> list[tuple[str, str]]:
    """(file, code) for every code span of the given files."""
    return [(p.relative_to(REPO).as_posix(), c) for p in paths for c in code_spans(p.read_text())]


def make_targets(makefile: str) -> set[str]:
    """The Makefile's rule names (`name: prerequisites`, not `NAME := value`)."""
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.M))


def named_make_targets(code: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(file, target) for every `make <target>` written in code."""
    pattern = re.compile(r"(?:^|(?<=[\s;&|(]))make\s+([A-Za-z][\w-]*)", re.M)
    return [(f, m.group(1)) for f, c in code for m in pattern.finditer(c)]


def named_overrides(code: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(file, name, value) for every `name=value` whose name has no dot (a group or a top key)."""
    pattern = re.compile(r"(?:^|(?<=[\s'\"(\[]))([A-Za-z_]\w*(?:/\w+)*)=([^\s`'\")\]]*)", re.M)
    return [(f, m.group(1), m.group(2)) for f, c in code for m in pattern.finditer(c)]


def is_placeholder(value: str) -> bool:
    """`dataset=NAME`, `features=...`, `ckpt=<run>/...`, `backbone=` (the group alone)."""
    return value in ("", "...") or value.isupper() or "<" in value


def problems_with_overrides(
    overrides: list[tuple[str, str, str]],
    options: dict[str, list[str]],
    top_keys: set[str],
) -> list[str]:
    """One line per override naming a missing group option or a name that is not config."""
    problems = []
    for file, name, value in overrides:
        if name.isupper() or name in NOT_CONFIG:  # make and shell variables, math, Python kwargs
            continue
        if options.get(name):
            if is_placeholder(value):
                continue
            missing = [v for v in value.split(",") if v not in options[name] and v != "null"]
            if missing:
                problems.append(f"{file}: `{name}={value}`: no option {missing} in {name}/")
        elif name not in top_keys:
            problems.append(
                f"{file}: `{name}={value}`: {name} is neither a config group under conf/ "
                "nor a top-level key of conf/train.yaml or conf/evaluate.yaml"
            )
    return problems


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {github_anchor(h) for h in re.findall(r"^#+ (.+)$", prose, re.M)}


def broken_links(path: Path) -> list[str]:
    """Relative Markdown links of a file whose target file or heading does not exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.is_file():
            broken.append(f"{path.name}: ({target}): no file {file}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{path.name}: ({target}): no heading #{anchor} in {linked.name}")
    return broken


@pytest.fixture(scope="module")
def group_options() -> dict[str, list[str]]:
    """Every config group a run can select, with its options, as Hydra sees them."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = {
            p.parent.relative_to(REPO / "conf").as_posix() for p in REPO.glob("conf/*/**/*.yaml")
        }
        groups |= {"hydra/launcher", "hydra/sweeper", "hydra/sweeper/sampler"}
        return {group: loader.get_group_options(group) for group in groups}


@pytest.fixture(scope="module")
def top_keys() -> set[str]:
    return {
        str(k) for name in ("train", "evaluate") for k in OmegaConf.load(REPO / f"conf/{name}.yaml")
    }


def test_docs_pages_exist() -> None:
    assert len(PAGES) >= 5, "README's 'Where to read more' points into docs/"


def test_readme_is_a_short_front_door() -> None:
    assert len(README.read_text().splitlines()) < MAX_README_LINES


def test_every_make_target_named_in_readme_and_docs_exists() -> None:
    targets = make_targets((REPO / "Makefile").read_text())
    named = named_make_targets(doc_code([README, *PAGES]))
    assert {"demo", "test"} <= {t for _, t in named}  # the two commands are documented
    missing = [f"{file}: make {t}" for file, t in named if t not in targets]
    assert missing == [], f"not a Makefile target: {missing}"


def test_every_config_group_and_option_named_in_readme_and_docs_exists(
    group_options: dict[str, list[str]], top_keys: set[str]
) -> None:
    overrides = named_overrides(doc_code([README, *PAGES]))
    assert len(overrides) > 50  # the extraction finds the docs' overrides at all
    assert problems_with_overrides(overrides, group_options, top_keys) == []


def test_every_conf_path_named_in_readme_and_docs_exists() -> None:
    for path in [README, *PAGES]:
        for named in re.findall(r"\bconf/[\w/.-]*[\w/]", path.read_text()):
            assert (REPO / named).exists(), f"{path.name} names {named}, which does not exist"


def test_readme_links_every_docs_page_and_every_link_resolves() -> None:
    readme = README.read_text()
    unlinked = [p.name for p in PAGES if f"](docs/{p.name}" not in readme]
    assert unlinked == [], f"docs pages README does not link: {unlinked}"
    assert [b for path in [README, *PAGES] for b in broken_links(path)] == []


def test_readme_table_lists_every_backbone_and_preset() -> None:
    readme = README.read_text()
    for group in ("backbone", "experiment", "hparams_search"):
        for option in sorted((REPO / "conf" / group).glob("*.yaml")):
            assert f"| `{group}={option.stem}` |" in readme, (
                f"{group}={option.stem} not in the table"
            )


def test_the_checks_catch_a_bogus_target_option_group_and_link(
    tmp_path: Path, group_options: dict[str, list[str]], top_keys: set[str]
) -> None:
    """The checks above can fail: each kind of mistake written into a page is found."""
    code = [
        (
            "bogus.md",
            "make demo-bogus; segser.train experiment=real_speeech augmnet=perturb seed=0",
        )
    ]
    assert named_make_targets(code) == [("bogus.md", "demo-bogus")]
    problems = problems_with_overrides(named_overrides(code), group_options, top_keys)
    assert len(problems) == 2 and "real_speeech" in problems[0] and "augmnet" in problems[1]
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# A heading\n")
    page.write_text("[a](missing.md) [b](other.md#no-such-heading) [c](other.md#a-heading)\n")
    assert len(broken_links(page)) == 2


def test_the_readme_worked_example_is_what_clip_metrics_compute() -> None:
    """README's example: clip 1 angry, votes tied angry/happy, mean logits angry; clip 2 all sad."""
    logits = torch.tensor(
        [
            [2.0, 0, 0, 0],
            [3, 0, 0, 0],
            [0, 1, 0, 0],
            [0, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 1, 0],
            [0, 0, 1, 0],
        ]
    )
    metrics = ClipMetrics(num_classes=4)
    metrics.update(logits, torch.tensor([0, 0, 0, 0, 2, 2, 2]), torch.tensor([1, 1, 1, 1, 2, 2, 2]))
    got = {
        k: round(float(v), 3)
        for k, v in metrics.compute().items()
        if k in ("SA", "ACA", "SCA", "BCA", "ALCA", "UA", "WA")
    }
    assert got == {
        "SA": 0.714,
        "ACA": 0.5,
        "SCA": 0.5,
        "BCA": 1.0,
        "ALCA": 1.0,
        "UA": 1.0,
        "WA": 1.0,
    }
    readme = " ".join(README.read_text().split())
    for stated in (
        "SA = 5/7 = 0.714",
        "ACA = 0.5",
        "SCA = 0.5",
        "BCA = 1.0",
        "ALCA = 1.0",
        "UA = WA = 1.0",
    ):
        assert stated in readme
