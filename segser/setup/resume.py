"""Resume after a kill: a run started again in its run directory goes on from last.ckpt.

Lightning restores weights, optimizer, loops and callbacks; ResumeState adds the random
generators (a resumed run draws the same shuffles and dropout masks as one never killed) and an
early stop already decided (a run killed between stopping and testing does not train on),
EpochCheckpoint writes last.ckpt after every epoch, and AtomicCheckpointIO makes sure a kill
during a save never leaves half a last.ckpt.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from segser.errors import SegserError
from segser.models.checkpoint import current_model_config

log = logging.getLogger("segser")


class ResumeState(L.Callback):
    """What Lightning does not restore: the random generators (Python, NumPy, torch CPU and
    CUDA), and that early stopping had already ended training."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stopped = [
            c
            for c in trainer.callbacks
            if isinstance(c, EarlyStopping) and (c.stopped_epoch > 0 or c.wait_count >= c.patience)
        ]
        if stopped and trainer.ckpt_path:
            log.info("early stopping had ended this run before it was killed: no more epochs")
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached = np.random.get_state()
        version, python_state, gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "python": [version, list(python_state), gauss],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state  # tensors and plain values only: loads with weights_only=True

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        kind, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
        version, python_state, gauss = state["python"]
        random.setstate((version, tuple(python_state), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (best.ckpt by the monitor) whose last.ckpt is the last epoch.

    Lightning 2.6 writes last.ckpt only in a step that also saved a best checkpoint, so after
    epochs without improvement it still held the best epoch: a run resumed from it redid every
    epoch since (up to the patience, 50 when fine-tuning) and `ckpt=last.ckpt` was the best one.
    """

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's own key: a run checkpointed before this class resumes with its best."""
        settings = super().state_key.removeprefix(type(self).__qualname__)
        return ModelCheckpoint.__qualname__ + settings

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def _save_last_if_missed(self, trainer: L.Trainer) -> None:
        # skipped outside fit, in the sanity check, and when this step already saved one
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes beside the final name, then renames (same folder, so one atomic step).

    Lightning's own save stages the file in the system temp folder, which is a copy, not a
    rename, when the run directory lies on another file system (most clusters).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(checkpoint, partial)
        os.replace(partial, path)


def _dotted(config: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(_dotted(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _check_same_model(
    checkpoint: dict[str, Any], path: Path, model_config: dict[str, Any], fix: str
) -> None:
    """A checkpoint of another model config would fail deep inside Lightning's state loading."""
    stored = (checkpoint.get("hyper_parameters") or {}).get("model_config")
    if not isinstance(stored, dict):
        return
    old, new = _dotted(current_model_config(stored)), _dotted(model_config)
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    if changed:
        shown = ", ".join(f"{key}={old.get(key)!r} -> {new.get(key)!r}" for key in changed[:3])
        more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        raise SegserError(
            f"{path}: this checkpoint was trained with another model config ({shown}{more}). {fix}"
        )


def resume_from(
    run_dir: Path, ckpt_path: str | None, model_config: dict[str, Any] | None = None
) -> str | None:
    """The checkpoint to resume from: `ckpt_path` if given, else the run directory's last.ckpt.

    Either is read once (memory-mapped, weights_only) so that a damaged file, or with
    `model_config` one trained with another model config, is refused in one line."""
    if ckpt_path:
        path, source = Path(ckpt_path), "ckpt_path"
        if not path.is_file():
            raise SegserError(
                f"ckpt_path={path}: checkpoint not found. Pass a last.ckpt or best.ckpt "
                "written by `python -m segser.train`, or drop ckpt_path to start afresh."
            )
        unreadable_fix = "Pass another checkpoint, or drop ckpt_path to start afresh."
        other_model_fix = "Resume it with the settings it was trained with, or drop ckpt_path."
    else:
        path, source = run_dir / "checkpoints" / "last.ckpt", "this run directory's last checkpoint"
        if not path.is_file():
            return None
        unreadable_fix = (
            "Delete it to start this run afresh, or pass ckpt_path=... to resume from another "
            "checkpoint."
        )
        other_model_fix = (
            "Give the new run its own directory (hydra.run.dir=...), or delete the old "
            "checkpoint to start this one afresh."
        )
    try:  # a damaged file is named, not unpickled inside Lightning's traceback
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        raise SegserError(
            f"{path}: cannot resume from it ({type(error).__name__}). {unreadable_fix}"
        ) from error
    if model_config is not None and isinstance(checkpoint, dict):
        _check_same_model(checkpoint, path, model_config, other_model_fix)
    log.info("resuming training from %s (%s)", path, source)
    return str(path)
