"""Batches sliced from one array per split equal per-segment reads; DDP eval shards never pad."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segser.data.batches import DeviceBatches, MappedRows, SegmentBatchSampler, SegmentRows


@pytest.fixture
def mapped_patches(tmp_path: Path) -> np.memmap:
    """A 4 MB memory-mapped patch array, row i filled with a value that names it."""
    rows = 160
    data = np.memmap(tmp_path / "patches.f32", dtype=np.float32, mode="w+", shape=(rows, 96, 64))
    data[:] = np.random.default_rng(0).standard_normal((rows, 96, 64), dtype=np.float32)
    data.flush()
    return np.memmap(tmp_path / "patches.f32", dtype=np.float32, mode="r", shape=(rows, 96, 64))


def split_of(array: np.ndarray) -> SegmentRows:
    """Every third row, with labels and clip ids derived from the row number."""
    cache_rows = np.arange(1, len(array), 3)
    return SegmentRows(MappedRows(array), cache_rows, cache_rows % 4, cache_rows // 5)


def per_segment(dataset: SegmentRows, indices: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The old path: one read and one tensor per segment, then stacked (default collate)."""
    source = np.asarray(dataset.rows.array)
    items = [
        (torch.from_numpy(np.array(source[dataset.cache_rows[i]])).unsqueeze(0),
         int(dataset.cache_rows[i] % 4), int(dataset.cache_rows[i] // 5))
        for i in indices
    ]  # fmt: skip
    patches, labels, clips = zip(*items, strict=True)
    return torch.stack(patches), torch.tensor(labels), torch.tensor(clips)


def test_a_batch_equals_the_per_segment_reads(mapped_patches: np.memmap) -> None:
    dataset = split_of(mapped_patches)
    indices = np.array([7, 0, 31, 5, 5, 12])
    for got, expected in zip(dataset[indices], per_segment(dataset, indices), strict=True):
        assert torch.equal(got, expected)
    assert dataset[indices][0].shape == (6, 1, 96, 64)


def test_embedding_rows_are_served_as_they_are() -> None:
    embeddings = np.arange(50 * 8, dtype=np.float32).reshape(50, 8)
    dataset = SegmentRows(MappedRows(embeddings), np.array([4, 9, 2]), np.zeros(3), np.zeros(3))
    features, _, _ = dataset[np.array([2, 0])]
    assert torch.equal(features, torch.from_numpy(embeddings[[2, 4]]))


def test_pickled_split_carries_the_file_name_not_the_data(mapped_patches: np.memmap) -> None:
    dataset = split_of(mapped_patches)
    payload = pickle.dumps(dataset)
    assert mapped_patches.nbytes > 3_000_000 and len(payload) < 20_000
    again = pickle.loads(payload)
    indices = np.arange(len(dataset))
    for got, expected in zip(again[indices], dataset[indices], strict=True):
        assert torch.equal(got, expected)


def test_spawned_workers_reopen_the_map_and_serve_the_same_batches(
    mapped_patches: np.memmap,
) -> None:
    dataset = split_of(mapped_patches)
    sampler = SegmentBatchSampler(len(dataset), 8, shuffle=False)
    loader = DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=1, multiprocessing_context="spawn"
    )
    batches = list(loader)
    assert len(batches) == len(sampler) == 7  # 53 segments in batches of 8
    for indices, batch in zip(sampler, batches, strict=True):
        for got, expected in zip(batch, per_segment(dataset, indices), strict=True):
            assert torch.equal(got, expected)


def test_one_process_shuffles_every_item_once_per_epoch() -> None:
    sampler = SegmentBatchSampler(53, 8, shuffle=True, seed=3)
    first = np.concatenate(list(sampler))
    sampler.set_epoch(1)
    second = np.concatenate(list(sampler))
    assert sorted(first) == sorted(second) == list(range(53))
    assert not np.array_equal(first, second)
    assert [len(b) for b in SegmentBatchSampler(53, 8, shuffle=True, seed=3)] == [8] * 6 + [5]
    again = np.concatenate(list(SegmentBatchSampler(53, 8, shuffle=True, seed=3)))
    assert np.array_equal(first, again)  # the seed decides the order


@pytest.mark.parametrize("num_items", [10, 11, 13])
def test_ddp_training_shares_are_equal_and_cover_every_item(num_items: int) -> None:
    ranks = [SegmentBatchSampler(num_items, 2, True, 5, rank, 3) for rank in range(3)]
    shares = [np.concatenate(list(sampler)) for sampler in ranks]
    assert len({len(s) for s in shares}) == 1  # same number of steps on every rank
    assert len({len(sampler) for sampler in ranks}) == 1
    assert set(np.concatenate(shares)) == set(range(num_items))


@pytest.mark.parametrize("num_items", [10, 11, 13, 2])
def test_ddp_evaluation_shards_never_repeat_a_segment(num_items: int) -> None:
    shares = [
        np.concatenate(list(SegmentBatchSampler(num_items, 2, False, 0, rank, 3)) or [[]])
        for rank in range(3)
    ]
    assert [len(SegmentBatchSampler(num_items, 2, False, 0, r, 3)) for r in range(3)] == [
        -(-len(s) // 2) for s in shares
    ]  # a rank without segments has no batches at all
    # Rank order then batch order is dataset order: gathered outputs line up with the rows.
    assert np.array_equal(np.concatenate(shares), np.arange(num_items))


def test_device_batches_equal_the_loader_batches(mapped_patches: np.memmap) -> None:
    dataset = split_of(mapped_patches)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resident = DeviceBatches(dataset, SegmentBatchSampler(len(dataset), 8, True, 7), device)
    loader = DataLoader(
        dataset, sampler=SegmentBatchSampler(len(dataset), 8, True, 7), batch_size=None
    )
    assert len(resident) == len(loader) == 7
    for on_device, from_loader in zip(resident, loader, strict=True):
        assert on_device[0].device.type == device.type
        for got, expected in zip(on_device, from_loader, strict=True):
            assert torch.equal(got.cpu(), expected)


def test_lightning_trains_from_device_batches_and_sets_their_epoch(
    mapped_patches: np.memmap,
) -> None:
    from functools import partial

    import lightning as L

    from segser.models.baseline import PatchMLP
    from segser.models.heads import ClassificationHead
    from segser.models.module import SegmentEmotionClassifier

    dataset = split_of(mapped_patches)
    resident = DeviceBatches(
        dataset, SegmentBatchSampler(len(dataset), 16, True, 0), torch.device("cpu")
    )
    model = SegmentEmotionClassifier(
        PatchMLP(num_layers=2, units=8, dropout=0.0),
        ClassificationHead(embedding_dim=8, units=8, num_classes=4),
        ["a", "b", "c", "d"],
        optimizer=partial(torch.optim.Adam, lr=1e-3),
    )
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=resident)
    assert trainer.global_step == 2 * len(resident)
    assert resident.sampler.epoch == 1  # reshuffled for the second epoch


def test_lightning_validates_and_tests_from_device_batches(mapped_patches: np.memmap) -> None:
    """Lightning inspects an eval loader's batch_sampler; DeviceBatches had none (GPU runs
    with data.device=auto died at their first validation)."""
    from functools import partial

    import lightning as L

    from segser.models.baseline import PatchMLP
    from segser.models.heads import ClassificationHead
    from segser.models.module import SegmentEmotionClassifier

    rows = np.arange(len(mapped_patches))
    clips = rows // 5  # five segments per clip, each carrying its clip's label
    dataset = SegmentRows(MappedRows(mapped_patches), rows, clips % 4, clips)
    cpu = torch.device("cpu")
    train, held_out = (
        DeviceBatches(dataset, SegmentBatchSampler(len(dataset), 16, shuffle, 0), cpu)
        for shuffle in (True, False)
    )
    model = SegmentEmotionClassifier(
        PatchMLP(num_layers=2, units=8, dropout=0.0),
        ClassificationHead(embedding_dim=8, units=8, num_classes=4),
        ["a", "b", "c", "d"],
        optimizer=partial(torch.optim.Adam, lr=1e-3),
    )
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=train, val_dataloaders=held_out)
    (tested,) = trainer.test(model, dataloaders=held_out, verbose=False)
    assert trainer.num_val_batches == [len(held_out)]
    assert 0.0 <= tested["test/SA"] <= 1.0
