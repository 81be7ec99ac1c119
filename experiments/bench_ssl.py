"""SSL backbone speed rows of `make bench`: embedding pass and fine-tuning, segments per second.

For each speech-transformer backbone (conf/backbone/wav2vec2_base ... wavlm_large) at its full
size, with RANDOM weights (none can be downloaded here; speed does not depend on their
values): the frozen embedding pass (eval, no grad, every layer pooled: what the frozen cache
builds) and a fine-tuning step (train mode with the bundle's dropout and layer drop, the
convolutional encoder frozen, forward + backward + Adam on the transformer and a head) on 1 s
segments, each after one warm-up batch. On CPU one small timed batch each (the rows are
short, not precise); with CUDA, bf16 autocast and larger batches: the GPU rows. Example:
    python experiments/bench_ssl.py [--device cuda] [--backbones wavlm_base_plus hubert_base]
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_units import per_second
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from segser.models.heads import ClassificationHead
from segser.setup.entry import CONF_DIR

BACKBONES = (
    "wav2vec2_base", "hubert_base", "wavlm_base_plus",
    "wav2vec2_large", "hubert_large", "wavlm_large",
)  # fmt: skip
SEGMENT_SAMPLES = 16000  # 1 s at 16 kHz, the paper's segment
# (batch size, timed batches) per device kind: CPU rows stay short.
SIZES = {"cpu": (2, 1), "cuda": (64, 10)}
BASE = BACKBONES[:3]  # make bench's CPU rows; the large ones with --ssl-large


def backbone_from_config(name: str, overrides: tuple[str, ...] = ()) -> torch.nn.Module:
    """The shipped conf/backbone/<name>.yaml's network, random weights (weights are not loaded)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"backbone={name}", *overrides])
    return instantiate(cfg.backbone.net)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def segments_per_second(step, device: torch.device, batches: int) -> float:
    """Batches per second of `step`, after one warm-up batch (allocator, kernels, Adam state)."""
    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    sync(device)
    return batches / (time.perf_counter() - start)


def ssl_rows(
    device: torch.device,
    backbones: tuple[str, ...] = BACKBONES,
    sizes: tuple[int, int] | None = None,
    overrides: tuple[str, ...] = (),
) -> list[list[str]]:
    """Two rows per backbone: frozen embedding pass and fine-tuning step, segments/s
    (`overrides`: config overrides, e.g. a smaller network for a smoke test)."""
    batch_size, batches = sizes or SIZES[device.type]
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")
    precision = "bf16 autocast" if device.type == "cuda" else "float32"
    rows = []
    for name in backbones:
        backbone = backbone_from_config(name, overrides).to(device)
        head = ClassificationHead(backbone.embedding_dim, 200, 4, input_norm=True, layer_sum=True,
                                  layer_dims=backbone.layer_dims).to(device)  # fmt: skip
        segments = 0.1 * torch.randn(batch_size, 1, SEGMENT_SAMPLES, device=device)
        labels = torch.randint(0, 4, (batch_size,), device=device)

        def embed(backbone=backbone, segments=segments) -> None:
            with torch.no_grad(), autocast:
                backbone(segments)

        backbone.eval()
        frozen = segments_per_second(embed, device, batches) * batch_size
        trainable = [p for p in backbone.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam([*trainable, *head.parameters()], lr=1e-5)

        def fine_tune(backbone=backbone, head=head, optimizer=optimizer, segments=segments,
                      labels=labels) -> None:  # fmt: skip
            with autocast:
                loss = torch.nn.functional.cross_entropy(head(backbone(segments)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        backbone.train()
        tuned = segments_per_second(fine_tune, device, batches) * batch_size
        where = f"{device.type}, {precision}, batch {batch_size}, {batches} timed batches"
        parameters = sum(p.numel() for p in backbone.parameters()) / 1e6
        note = f"random weights; {parameters:.0f}M parameters, 1 s segments"
        rows.append([f"{name} embedding pass (frozen, every layer)", where, "-",
                     per_second(frozen, "segments"), "-", note])  # fmt: skip
        rows.append([f"{name} fine-tuning step (conv encoder frozen)", where, "-",
                     per_second(tuned, "segments"), "-", note])  # fmt: skip
        del backbone, head, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--batches", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    default = SIZES[device.type]
    sizes = (args.batch_size or default[0], args.batches or default[1])
    for row in ssl_rows(device, tuple(args.backbones), sizes):
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
