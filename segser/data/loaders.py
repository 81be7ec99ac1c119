"""How a datamodule's splits become batches: resident on the GPU, or host memory (pinned).

One concern kept apart from what the splits hold (segser.data.datamodule): the sampler of
each rank's share, the epoch a resumed run is at, and where a split is served from.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from segser.data.batches import DeviceBatches, SegmentBatchSampler, SegmentRows
from segser.errors import SegserError

DATA_DEVICES = ("auto", "cpu", "cuda")
# auto keeps a split on the GPU when it takes at most this share of the free GPU memory.
RESIDENT_FRACTION_OF_FREE = 0.5


class SplitLoaders:
    """The LightningDataModule loader hooks over `self.datasets` (name -> SegmentRows), served
    as `self.device` says (auto, cpu or cuda) in batches of `self.batch_size`."""

    datasets: dict[str, SegmentRows]
    device: str
    batch_size: int
    num_workers: int

    def _epoch_to_run(self) -> int:
        """The epoch the trainer runs next (0 outside a fit).

        Lightning draws the first batch before it calls `set_epoch`, and a resumed run keeps
        that iterator for its first epoch (training_epoch_loop.on_run_start): a sampler left at
        epoch 0 replayed epoch 0's order there, so a resumed run drifted from an unkilled one.
        """
        trainer = getattr(self, "trainer", None)
        return int(trainer.fit_loop.epoch_progress.current.processed) if trainer is not None else 0

    def _trainer_device(self) -> tuple[torch.device, int, int]:
        """The device, rank and world size of the trainer running this datamodule, if any."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return torch.device("cpu"), 0, 1
        return trainer.strategy.root_device, trainer.global_rank, trainer.world_size

    def _resident_device(self, dataset: SegmentRows, device: torch.device) -> torch.device | None:
        """The GPU to keep this split on, or None to serve it from host memory."""
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise SegserError("data.device=cuda but CUDA is unavailable; use data.device=auto.")
            return device if device.type == "cuda" else torch.device("cuda")
        if self.device == "auto" and device.type == "cuda":
            free_bytes, _ = torch.cuda.mem_get_info(device)
            if dataset.nbytes() < RESIDENT_FRACTION_OF_FREE * free_bytes:
                return device
        return None

    def _loader(self, name: str, shuffle: bool) -> DataLoader | DeviceBatches:
        dataset = self.datasets[name]
        device, rank, world_size = self._trainer_device()
        sampler = SegmentBatchSampler(
            len(dataset), self.batch_size, shuffle, torch.initial_seed(), rank, world_size
        )
        sampler.set_epoch(self._epoch_to_run())
        resident = self._resident_device(dataset, device)
        if resident is not None:
            return DeviceBatches(dataset, sampler, resident)
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,  # the sampler yields whole batches; the dataset slices them
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=device.type == "cuda" and self.device != "cpu",
        )

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("train", shuffle=True)

    def statistics_dataloader(self) -> DataLoader:
        """This rank's training rows, each once, in order and from host memory: what the head's
        input standardizer is fitted on (a shuffled share repeats rows to even out DDP ranks,
        and a resident copy would be a second one on the GPU)."""
        dataset = self.datasets["train"]
        _, rank, world_size = self._trainer_device()
        sampler = SegmentBatchSampler(len(dataset), self.batch_size, False, 0, rank, world_size)
        return DataLoader(dataset, sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("test", shuffle=False)
