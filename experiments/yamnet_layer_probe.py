"""Which YAMNet layers carry emotion: a linear probe per layer, outside segser's pipeline.

Features from torchvggish's numpy reference frontend (log offset 0.001, 0.96 s patches at a
0.48 s hop, YAMNet's own framing), each layer's output average-pooled and averaged per clip,
then StandardScaler + logistic regression trained on some EmoDB speakers and tested on the
others (make bench-real's 4 speaker folds: the shipped dataset=emodb and split=speaker_folds;
the probe trains on all 6 other speakers, bench-real keeps one for validation). The packaged
AudioSet weights beside a random He-normal init of the same network: the gap is what transfers.
Only the corpus reader, the folds and the YAMNet module are segser's (tests check the module
against an independent forward). Prints a Markdown table; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torchvggish import vggish_input, vggish_params

from segser.data.corpora.clips import Clip
from segser.data.splits import speaker_folds
from segser.models.yamnet import LAYER_CHANNELS, YAMNet
from segser.setup.components import read_corpus
from segser.setup.entry import composed

REPO = Path(__file__).resolve().parents[1]
NUM_FOLDS = 4


def clip_layer_means(clips: list[Clip], nets: dict[str, YAMNet]) -> dict[str, list[list]]:
    """{weights: [layer][clip] pooled output} for each clip."""
    vggish_params.LOG_OFFSET = 0.001  # YAMNet's frontend: VGGish's with a smaller log offset
    vggish_params.EXAMPLE_HOP_SECONDS = 0.48
    means = {name: [[] for _ in LAYER_CHANNELS] for name in nets}
    for clip in clips:
        samples, rate = sf.read(clip.path, dtype="int16")
        patches = vggish_input.waveform_to_examples(samples / 32768.0, rate, return_tensor=False)
        x0 = torch.from_numpy(patches).float().unsqueeze(1)
        with torch.no_grad():
            for name, net in nets.items():
                x = x0
                for index, layer in enumerate(net.layers):
                    x = layer(x)
                    means[name][index].append(x.mean(dim=(2, 3)).mean(0).numpy())
    return means


def probe(features: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """WA and UA over every clip, each predicted by a probe that never heard its speaker."""
    predicted = np.empty_like(labels)
    for fold in range(1, NUM_FOLDS + 1):
        held_out = folds == fold
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
        classifier.fit(features[~held_out], labels[~held_out])
        predicted[held_out] = classifier.predict(features[held_out])
    return accuracy_score(labels, predicted), balanced_accuracy_score(labels, predicted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/emodb-2s")
    args = parser.parse_args()
    torch.manual_seed(0)
    nets = {}
    for weights in ("packaged", "none"):
        nets[weights] = YAMNet(embedding_layers=[len(LAYER_CHANNELS) - 1]).eval()
        nets[weights].load_weights(weights)
    dataset = composed("train", ["dataset=emodb", f"dataset.root={args.root}"]).dataset
    clips = read_corpus(dataset)  # the four classes, as dataset=emodb maps them
    labels = np.array([clip.label for clip in clips])
    fold_of = speaker_folds([clip.speaker for clip in clips], NUM_FOLDS)
    folds = np.array([fold_of[clip.speaker] for clip in clips])
    means = clip_layer_means(clips, nets)
    print("| layer | channels | AudioSet weights WA / UA | random init WA / UA |")
    print("|---|---|---|---|")
    rows = [(str(i), [i]) for i in range(len(LAYER_CHANNELS))]
    rows += [("6-11 concatenated", list(range(6, 12))), ("6-13 concatenated", list(range(6, 14)))]
    for label, layers in rows:
        cells = []
        for name in nets:
            features = np.concatenate([np.stack(means[name][i]) for i in layers], axis=1)
            wa, ua = probe(features, labels, folds)
            cells.append(f"{wa:.3f} / {ua:.3f}")
        channels = sum(LAYER_CHANNELS[i] for i in layers)
        print(f"| {label} | {channels} | {cells[0]} | {cells[1]} |")
    print(
        f"\n{len(labels)} clips of {args.root}; {NUM_FOLDS} speaker folds (as make bench-real); "
        "clip-mean pooled layer outputs."
    )


if __name__ == "__main__":
    main()
