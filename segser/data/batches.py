"""Batches as slices of one array per split: one fancy index per batch, no per-segment Python.

The array's row i is segment i of the cache: patches [rows, 96, 64] (served as [B, 1, 96, 64])
or embeddings [rows, D] (served as is). A memory-mapped array pickles as its file name and is
reopened lazily in each loader worker. In DDP, training batches are padded to the same count
on every rank (as DistributedSampler does); evaluation shards are contiguous and never padded,
so every segment votes exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class MappedRows:
    """An array whose row i is segment i; a np.memmap travels to workers as its file name.

    `add_channel`: rows of patches [rows, 96, 64] are served with a channel axis. `offset`: a
    per-column float32 vector added to every row served (float16 embeddings are stored as the
    difference from one, so that their rounding is relative to their spread, not their size)."""

    def __init__(self, array: np.ndarray, offset: np.ndarray | None = None) -> None:
        self._array: np.ndarray | None = array
        self.add_channel = array.ndim == 3
        self.offset = offset
        self._spec = None
        if isinstance(array, np.memmap) and array.filename:
            self._spec = (array.filename, array.dtype.str, array.shape, array.offset)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            filename, dtype, shape, offset = self._spec
            self._array = np.memmap(filename, dtype=dtype, mode="r", shape=shape, offset=offset)
        return self._array

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` as float32 (one fancy index: a copy, never a view), offset added."""
        batch = np.asarray(self.array[rows], dtype=np.float32)
        return batch + self.offset if self.offset is not None else batch

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None if self._spec else self._array
        return state


class SegmentRows(Dataset):
    """One split's segments: `dataset[indices]` is a whole batch (features, label, clip), and
    each segment's valid samples as a fourth item where raw samples are served (`lengths`)."""

    def __init__(
        self,
        rows: MappedRows,
        cache_rows: np.ndarray,
        labels: np.ndarray,
        clips: np.ndarray,
        lengths: np.ndarray | None = None,
    ) -> None:
        """cache_rows[i], labels[i], clips[i]: cache row, class and clip index of item i;
        lengths[i]: its valid samples (a zero-padded last segment has fewer), or None."""
        self.rows = rows
        self.cache_rows = np.asarray(cache_rows, dtype=np.int64)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.clips = torch.as_tensor(clips, dtype=torch.int64)
        self.lengths = None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.cache_rows)

    def features(self, indices: np.ndarray) -> torch.Tensor:
        """Features of the given items, one fancy index of the array (a copy, never a view)."""
        batch = torch.from_numpy(np.ascontiguousarray(self.rows.take(self.cache_rows[indices])))
        # patches and waveform segments get a channel axis (embeddings stay [B, D])
        return batch.unsqueeze(1) if self.rows.add_channel else batch

    def __getitem__(self, indices: np.ndarray) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        batch = (self.features(indices), self.labels[index], self.clips[index])
        return batch if self.lengths is None else (*batch, self.lengths[index])

    def nbytes(self) -> int:
        """Bytes of the split as served (float32, float16 embeddings included)."""
        return len(self) * int(np.prod(self.rows.array.shape[1:])) * 4


class SegmentBatchSampler(Sampler[np.ndarray]):
    """Index batches of one rank's share of `num_items` (shuffled anew each epoch when asked)."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_items, self.batch_size, self.shuffle = num_items, batch_size, shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """This rank's items: padded to equal shares when shuffling, contiguous otherwise."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
            share = -(-self.num_items // self.world_size)
            order = np.resize(order, share * self.world_size)  # repeats the first items
            return order[self.rank :: self.world_size]
        bounds = np.linspace(0, self.num_items, self.world_size + 1).round().astype(np.int64)
        return np.arange(bounds[self.rank], bounds[self.rank + 1])

    def __iter__(self) -> Iterator[np.ndarray]:
        items = self.indices()
        return iter(
            np.split(items, range(self.batch_size, len(items), self.batch_size))
            if len(items)
            else []
        )

    def __len__(self) -> int:
        return -(-len(self.indices()) // self.batch_size)


class DeviceBatches:
    """A whole split resident on one device; batches are index slices of its tensors."""

    # Lightning reads a loader's batch_sampler beside its sampler (for eval loaders); the
    # batching is the sampler's own, so there is none to report.
    batch_sampler = None

    def __init__(self, dataset: SegmentRows, sampler: SegmentBatchSampler, device: torch.device):
        self.sampler = sampler  # Lightning calls sampler.set_epoch through this attribute
        self.dataset = dataset
        everything = np.arange(len(dataset))
        self.tensors = tuple(t.to(device) for t in dataset[everything])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.tensors[0].device
        for indices in self.sampler:
            index = torch.from_numpy(indices).to(device, non_blocking=True)
            yield tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.sampler)
