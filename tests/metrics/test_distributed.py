"""Two ranks holding different segments of shared clips sync to the 1-process result: two gloo
processes, and the same gather faked in one process through the metrics' `dist_sync_fn`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor
from torchmetrics import Metric

from segser.metrics import ClipMetrics
from tests.metrics.test_clip_accuracy import METRICS

WORLD_SIZE = 2
NUM_CLASSES = 4
TIMEOUT_SECONDS = 60
SCENARIOS = ("shared", "empty_rank")

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")


def segments(seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """30 clips of 1-6 segments, shuffled so that most clips have segments on both ranks."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 7, (30,), generator=generator)
    clip_ids = torch.repeat_interleave(torch.arange(30) * 7 + 100, sizes)
    target = torch.repeat_interleave(
        torch.randint(0, NUM_CLASSES, (30,), generator=generator), sizes
    )
    # Quarter steps: exact float sums in any order, and ties in argmax and in votes.
    logits = torch.randint(-3, 4, (len(target), NUM_CLASSES), generator=generator) / 4
    order = torch.randperm(len(target), generator=generator)
    return logits[order], target[order], clip_ids[order]


Parts = list[tuple[Tensor, Tensor, Tensor]]


def evaluate(
    parts: Parts, make: Callable[[type[Metric]], Metric] = lambda cls: cls(NUM_CLASSES)
) -> dict[str, object]:
    """Every metric (built by `make`) fed the given batches; plain Python values to compare."""
    result: dict[str, object] = {}
    metric = make(ClipMetrics)
    for part in parts:
        metric.update(*part)
    for key, value in metric.compute().items():
        result[key] = value.tolist()
    clips = metric.clips  # gathered from every rank
    for key in ("clip_ids", "segments", "target", "mean_logits_prediction", "majority_prediction"):
        result[f"clips/{key}"] = getattr(clips, key).tolist()
    # After sync, compute must leave the local segments in place.
    result["local_segments"] = sum(len(t) for t in metric.target)
    for name, metric_class in METRICS.items():
        single = make(metric_class)
        for part in parts:
            single.update(*part)
        result[name] = single.compute().item()
    return result


def rank_parts(rank: int, scenario: str) -> list[tuple[Tensor, Tensor, Tensor]]:
    """This rank's batches: 'shared' gives rank 0 two thirds of the segments, rank 1 the rest."""
    logits, target, clip_ids = segments()
    if scenario == "empty_rank":
        return [(logits, target, clip_ids)] if rank == 0 else []
    mine = torch.arange(len(target)) % 3 != 2 if rank == 0 else torch.arange(len(target)) % 3 == 2
    return list(
        zip(logits[mine].chunk(2), target[mine].chunk(2), clip_ids[mine].chunk(2), strict=True)
    )


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=TIMEOUT_SECONDS),
    )
    try:
        for scenario in SCENARIOS:
            result = evaluate(rank_parts(rank, scenario))
            torch.save(result, Path(out_dir) / f"{scenario}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spawn the ranks once for all scenarios; fail (and kill them) rather than hang."""
    tmp_path = tmp_path_factory.mktemp("gloo")
    context = mp.spawn(
        worker,
        args=(str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=False,
    )
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"gloo ranks did not finish within {TIMEOUT_SECONDS} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return tmp_path


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_synced_compute_equals_single_process(synced: Path, scenario: str) -> None:
    if scenario == "shared":  # the point of the test: clips split between the ranks
        on_rank = [
            {int(c) for _, _, ids in rank_parts(rank, scenario) for c in ids}
            for rank in range(WORLD_SIZE)
        ]
        assert len(on_rank[0] & on_rank[1]) >= 15
    expected = evaluate([segments()])
    for rank in range(WORLD_SIZE):
        result = torch.load(synced / f"{scenario}-rank{rank}.pt")
        local = sum(len(target) for _, target, _ in rank_parts(rank, scenario))
        assert result.pop("local_segments") == local
        expected.pop("local_segments", None)
        # Every rank sees the synced whole: the same numbers, recalls (NaN included) and clips.
        torch.testing.assert_close(result, expected, equal_nan=True, msg=f"rank {rank}")


def sent_states(metric_class: type[Metric], parts: Parts) -> list[Tensor]:
    """What a rank holding `parts` hands its gather, state by state (its sync, recorded)."""
    metric, sent = metric_class(NUM_CLASSES), []
    for part in parts:
        metric.update(*part)

    def record(tensor: Tensor, group: object = None) -> list[Tensor]:
        sent.append(tensor)
        return [tensor]

    metric.sync(dist_sync_fn=record, distributed_available=lambda: True)
    metric.unsync()
    return sent


def two_rank_gather(sent: list[list[Tensor]], rank: int) -> Callable[..., list[Tensor]]:
    """all_gather across two ranks faked in one process: each call returns both ranks' tensor
    of the next state, and refuses what gloo cannot gather (other ndim, dtype or row shape)."""
    calls = iter(zip(*sent, strict=True))

    def gather(tensor: Tensor, group: object = None) -> list[Tensor]:
        per_rank = list(next(calls))
        assert torch.equal(tensor, per_rank[rank])
        kinds = {(t.ndim, t.dtype, tuple(t.shape[1:])) for t in per_rank}
        if len(kinds) > 1:
            raise RuntimeError(f"ranks send tensors that cannot be gathered together: {kinds}")
        return per_rank

    return gather


FAKE_SCENARIOS = {
    "shared": [rank_parts(0, "shared"), rank_parts(1, "shared")],
    "rank 1 empty": [rank_parts(0, "empty_rank"), []],
    "rank 0 empty": [[], rank_parts(0, "empty_rank")],
    "both empty": [[], []],
}


@pytest.mark.parametrize("scenario", FAKE_SCENARIOS)
def test_faked_gather_gives_every_rank_the_single_process_result(scenario: str) -> None:
    parts_by_rank = FAKE_SCENARIOS[scenario]
    expected = evaluate([] if scenario == "both empty" else [segments()])
    expected.pop("local_segments")
    sent = {cls: [sent_states(cls, parts) for parts in parts_by_rank] for cls in METRICS.values()}
    sent[ClipMetrics] = [sent_states(ClipMetrics, parts) for parts in parts_by_rank]
    for rank, parts in enumerate(parts_by_rank):
        result = evaluate(
            parts,
            lambda cls, rank=rank: cls(
                NUM_CLASSES,
                dist_sync_fn=two_rank_gather(sent[cls], rank),
                distributed_available_fn=lambda: True,
            ),
        )
        assert result.pop("local_segments") == sum(len(target) for _, target, _ in parts)
        torch.testing.assert_close(result, expected, equal_nan=True, msg=f"rank {rank}")
