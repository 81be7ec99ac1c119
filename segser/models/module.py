"""LightningModule: backbone -> head on each segment; clip metrics from the segment logits.

What it asks of its datamodule is the `SegmentSource` protocol below, nothing else.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import lightning as L
import torch
from torch import nn

from segser.errors import SegserError
from segser.metrics.clip_accuracy import ClipSummary
from segser.metrics.collection import ACCURACY_NAMES, ClipMetrics
from segser.metrics.mean_loss import MeanSegmentLoss

OptimizerFactory = Callable[[Iterable[dict[str, Any]]], torch.optim.Optimizer]


class SegmentSource(Protocol):
    """What the module may ask of its datamodule (segser.data.datamodule.SegmentDataModule).

    Asked in `setup`, from `trainer.datamodule`: a Trainer keeps the datamodule of its last
    call, so give every fit/validate/test call its datamodule (segser's entry points do)."""

    def serves_embeddings(self) -> bool:
        """True: batches hold a frozen backbone's cached embeddings [B, D] (head only)."""
        ...

    def train_class_counts(self) -> torch.Tensor:
        """Training segments per class [C]: what the class-weighted loss is set from."""
        ...

    def statistics_dataloader(self) -> Iterable[tuple[torch.Tensor, ...]]:
        """This rank's training rows, each once: what the head's standardizer is fitted on."""
        ...


@dataclass(frozen=True)
class ScoredTest:
    """What a test epoch scored: `results` (the five accuracies, UA, WA, per_class_recall,
    confusion_matrix) and the clip table behind them (segment logits, clip decisions)."""

    results: dict[str, torch.Tensor]
    clips: ClipSummary


class SegmentEmotionClassifier(L.LightningModule):
    """The paper's model: a (pre-trained) backbone embeds each patch, a small head classifies it."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        classes: Sequence[str],
        optimizer: OptimizerFactory | None = None,
        backbone_lr: float | None = None,
        freeze_backbone: bool = False,
        model_config: dict | None = None,
        class_weighted_loss: bool = False,
        channels_last: bool = False,
        compile_backbone: bool = False,
    ) -> None:
        """`class_weighted_loss`: the loss weighs class c by n / (C * n_c) over the training
        segments, set at every fit start (a resumed run too); the same weighted loss validates,
        so early stopping follows it too. `channels_last`, `compile_backbone`: GPU switches that
        leave the maths and the state-dict keys unchanged (NHWC convolutions, a compiled
        backbone), so checkpoints load with or without them."""
        super().__init__()
        # model_config (plain dict) lets a checkpoint rebuild this module without Hydra's run dir;
        # the speed switches are not the model's, so checkpoints do not record them.
        ignored = ["backbone", "head", "optimizer", "channels_last", "compile_backbone"]
        self.save_hyperparameters(ignore=ignored)
        self.backbone = backbone
        self.head = head
        self.classes = list(classes)
        self.optimizer_factory = optimizer
        self.backbone_lr = backbone_lr
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.loss = nn.CrossEntropyLoss()
        self.train_loss = MeanSegmentLoss()  # never waits for the device (a NaN check would)
        self.val_metrics = ClipMetrics(len(self.classes))
        self.test_metrics = ClipMetrics(len(self.classes))
        # What the last test epoch scored (on_test_epoch_end sets it, nothing else does): train
        # and evaluate write it out (segser.runs.results). None until a test epoch has run.
        self.tested: ScoredTest | None = None
        # Whether batches hold cached embeddings (the head only runs) or the backbone's inputs:
        # what the datamodule says in `setup`; without one (plain dataloaders), backbone inputs.
        self.inputs_are_embeddings = False
        # Whether every loss and logit of the epoch so far was finite, kept on the device so
        # that checking costs one sync per epoch, not one per step (None: nothing seen yet).
        self.finite: dict[str, torch.Tensor | None] = {"train": None, "val": None}
        # One patch lets the model summary trace shapes and count FLOPs.
        self.example_input_array = torch.zeros(1, *getattr(backbone, "input_shape", (1, 96, 64)))
        self.class_weighted_loss = class_weighted_loss
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        if compile_backbone:
            self.backbone.compile()

    def setup(self, stage: str) -> None:
        """Lightning calls this after the datamodule's setup: what its batches hold."""
        source: SegmentSource | None = self.trainer.datamodule
        self.inputs_are_embeddings = source is not None and source.serves_embeddings()

    def forward(self, patches: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Segment logits [B, C] from patches [B, 1, 96, 64] (or raw segments [B, 1, samples]
        with their valid samples `lengths` [B], where the feature path has them)."""
        return self.head(self.embed(patches, lengths))

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The backbone's embedding [B, D]; `lengths` reach only backbones of raw samples."""
        if self.channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.backbone(inputs) if lengths is None else self.backbone(inputs, lengths)

    def segment_logits(
        self, inputs: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits from a batch of patches [B, 1, 96, 64] (or raw segments), or of a frozen
        backbone's cached embeddings [B, D] where the datamodule serves those: head only."""
        return self.head(inputs) if self.inputs_are_embeddings else self(inputs, lengths)

    def _weigh_classes(self, counts: torch.Tensor) -> None:
        """Inverse-frequency class weights from the training segments per class [C]."""
        counts = counts.double()
        weights = counts.sum() / (len(self.classes) * counts.clamp_min(1))
        self.loss = nn.CrossEntropyLoss(weight=weights.float().to(self.device))
        # Refitted at every fit start (a resumed run too), so not a checkpoint entry: a stored
        # loss.weight made the checkpoint unloadable into the model its config builds.
        self.loss.register_buffer("weight", self.loss.weight, persistent=False)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Drops the `loss.weight` that class-weighted checkpoints stored before it was left out."""
        if "loss.weight" in state_dict:
            metadata = getattr(state_dict, "_metadata", None)
            state_dict = OrderedDict((k, v) for k, v in state_dict.items() if k != "loss.weight")
            if metadata is not None:
                state_dict._metadata = metadata  # type: ignore[attr-defined]
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_fit_start(self) -> None:
        """Before the first epoch: the loss's class weights (if asked for) and, once per run,
        the head's input standardizer (a resumed run has it from its checkpoint)."""
        source: SegmentSource = self.trainer.datamodule
        if self.class_weighted_loss:
            self._weigh_classes(source.train_class_counts())
        standardizer = getattr(self.head, "standardizer", None)
        if standardizer is not None and not bool(standardizer.fitted):
            self.fit_input_standardizer(source.statistics_dataloader())

    def fit_input_standardizer(self, batches: Iterable[tuple[torch.Tensor, ...]]) -> None:
        """The one place the head's input standardizer is fitted: one pass over the training
        rows (cached embeddings, or through the backbone), summed over DDP ranks; the
        generators are left as they were, so the epochs draw the same shuffles with or without.
        """
        standardizer = self.head.standardizer
        moments = None  # per dimension: sum, sum of squares
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            for inputs, _, _, *lengths in batches:
                inputs = inputs.to(self.device)
                lengths = lengths[0].to(self.device) if lengths else None
                embedded = self.inputs_are_embeddings
                embeddings = (inputs if embedded else self.embed(inputs, lengths)).double()
                batch = torch.stack([embeddings.sum(0), embeddings.square().sum(0)])
                moments = batch if moments is None else moments + batch
                count += len(embeddings)
        self.backbone.train(was_training)
        if moments is None:
            return
        reduce = self.trainer.strategy.reduce
        moments, count = (reduce(t, reduce_op="sum") for t in (moments, count))
        standardizer.fit(moments[0], moments[1], float(count))

    def on_train_epoch_start(self) -> None:
        self.finite["train"] = None
        if self.freeze_backbone:  # a frozen backbone keeps its batch-norm statistics and no dropout
            self.backbone.eval()

    def _track_finite(self, stage: str, loss: torch.Tensor, logits: torch.Tensor) -> None:
        finite = torch.isfinite(loss).all() & torch.isfinite(logits.detach()).all()
        seen = self.finite[stage]
        self.finite[stage] = finite if seen is None else seen & finite

    def _stop_if_diverged(self, stage: str) -> None:
        """Diverged training is reported, never scored: one line naming the epoch."""
        seen = self.finite[stage]
        if seen is not None and not bool(seen):
            raise SegserError(
                f"training diverged in epoch {self.current_epoch} (counting from 0): the {stage} "
                "loss or logits are NaN or Inf, so no metrics are written. Lower optimizer.lr, "
                "or check the features for NaN or Inf"
            )

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        patches, labels, _, *lengths = batch
        logits = self.segment_logits(patches, *lengths)
        loss = self.loss(logits, labels)
        self._track_finite("train", loss, logits)
        # Accumulated here and logged once per epoch: self.log on every step costs more than
        # a whole step of a head on cached embeddings.
        self.train_loss.update(loss, len(labels))
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, ...], stage: str, metrics: ClipMetrics) -> None:
        patches, labels, clip_ids, *lengths = batch
        logits = self.segment_logits(patches, *lengths)
        loss = self.loss(logits, labels)
        if stage == "val":
            self._track_finite(stage, loss, logits)
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            batch_size=len(labels),
            sync_dist=True,
        )
        metrics.update(logits, labels, clip_ids)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def _log_clip_metrics(self, stage: str, metrics: ClipMetrics) -> dict[str, torch.Tensor]:
        values = metrics.compute()
        for name in ACCURACY_NAMES:  # ALCA is the paper's headline number: show it in the bar
            # Already gathered from every rank by the metric; sync_dist only quiets DDP's warning.
            self.log(f"{stage}/{name}", values[name], prog_bar=name == "ALCA", sync_dist=True)
        metrics.reset()
        return values

    def on_validation_epoch_start(self) -> None:
        self.finite["val"] = None
        self._stop_if_diverged("train")  # before a diverged model is validated or checkpointed

    def on_validation_epoch_end(self) -> None:
        self._stop_if_diverged("val")
        self._log_clip_metrics("val", self.val_metrics)

    def on_train_epoch_end(self) -> None:
        self._stop_if_diverged("train")
        self.log("train/loss", self.train_loss.compute(), prog_bar=True)
        self.train_loss.reset()

    def on_test_epoch_end(self) -> None:
        results = self._log_clip_metrics("test", self.test_metrics)
        self.tested = ScoredTest(results, self.test_metrics.clips)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            raise RuntimeError("SegmentEmotionClassifier needs an optimizer factory to train.")
        groups: list[dict[str, Any]] = [{"params": list(self.head.parameters())}]
        if not self.freeze_backbone:
            # backbone.trainable_layers leaves the earlier layers without gradients: not theirs
            trainable = [p for p in self.backbone.parameters() if p.requires_grad]
            group: dict[str, Any] = {"params": trainable}
            if self.backbone_lr is not None:
                group["lr"] = self.backbone_lr
            groups.append(group)
        return self.optimizer_factory(groups)
