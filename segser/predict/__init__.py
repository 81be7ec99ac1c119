"""`python -m segser.predict CKPT INPUT [INPUT ...]`: emotion of new recordings, segment by segment.

Per file: <stem>.segments.csv (a row per segment), <stem>.json (the file's clip decisions) and
<stem>.timeline.png; summary.csv for the run (a row per file). Rows stream to disk as they come.
Recordings of any length stream through in bounded memory (segser.data.signal.stream), cut
exactly as training cut its clips, so a file's predictions equal the model on
segment_patches(whole file) (or, for a raw-sample backbone, on segment_waveform(whole file),
each segment with its valid samples; a clip-context Whisper encodes each streamed batch's
consecutive segments as one span).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from segser.data.feature_path import segment_lengths
from segser.data.features import feature_path
from segser.data.signal.audio import AudioInfo, audio_info
from segser.data.signal.segmentation import count_segments
from segser.data.signal.stream import find_audio, stream_segments
from segser.errors import SegserError
from segser.metrics.clip_accuracy import decision_name, segment_predictions
from segser.models.checkpoint import load_trained
from segser.predict import speakers as by_speaker
from segser.predict.clip_outputs import clip_decisions, output_stems
from segser.predict.timeline import Timeline
from segser.setup.entry import output_root

TIMELINE_BINS = 2000  # an hour at 0.5 s hop pools ~4 segments per bar


class Predictor:
    """A checkpoint's model with the input pipeline it was trained on (segmentation, features)."""

    def __init__(self, checkpoint: str | Path, device: torch.device, batch_size: int) -> None:
        trained = load_trained(checkpoint)  # one SegserError line for any fault of the file
        self.model = trained.model.to(device)
        self.classes: list[str] = trained.classes
        self.window_seconds = trained.segmentation.window_seconds
        self.hop_seconds = trained.segmentation.hop_seconds
        path = feature_path(trained.features)  # log-mel patches, or raw segments + lengths
        self.features: torch.nn.Module = path.stream_module().to(device)
        self.has_lengths = path.has_lengths
        self.window_samples = round(self.window_seconds * trained.features.sample_rate_hz)
        self.tail = trained.segmentation.tail
        self.sample_rate = trained.features.sample_rate_hz
        self.hop_samples = round(self.hop_seconds * self.sample_rate)  # as segmentation rounds
        self.device, self.batch_size = device, batch_size
        self.speaker_norm = trained.speaker_norm  # None unless trained with data.speaker_norm
        self.file_statistics: dict[Path, by_speaker.FileStatistics] = {}  # predict() plans them
        self.columns = ["segment", "start_s", "end_s", "prediction"]
        self.columns += [f"p_{c}" for c in self.classes]

    def lengths(self, first: int, count: int, samples: int) -> torch.Tensor | None:
        """Valid samples of segments first..first+count-1 of a recording of `samples` samples,
        where the model reads raw samples (None for log-mel patches)."""
        if not self.has_lengths:
            return None
        starts = (first + np.arange(count)) * self.hop_samples
        return segment_lengths(samples, starts, self.window_samples)

    @torch.inference_mode()
    def logits(
        self,
        segments: torch.Tensor,
        lengths: torch.Tensor | None = None,
        statistics: by_speaker.FileStatistics | None = None,
    ) -> torch.Tensor:
        """Segment logits [B, C] (float32, CPU) of segments [B, samples] (+ valid samples); a
        speaker_norm model standardises embeddings with `statistics` (else training's)."""
        embedded = self.embeddings(segments, lengths)
        if self.speaker_norm is not None:
            own = statistics is not None and statistics.mean is not None
            source = statistics if own else self.speaker_norm  # else the training statistics
            embedded = (embedded - source.mean.to(self.device)) / source.std.to(self.device)
        return self.model.head(embedded).float().cpu()

    @torch.inference_mode()
    def embeddings(self, segments: torch.Tensor, lengths: torch.Tensor | None = None):
        """The backbone's embeddings [B, D] of segments [B, samples] (and valid samples)."""
        inputs = self.features(segments.to(self.device))
        if lengths is None:
            return self.model.embed(inputs)
        if getattr(self.model.backbone, "context", "segment") == "clip":
            return self._clip_context_embeddings(segments, lengths.to(self.device))
        return self.model.embed(inputs, lengths.to(self.device))

    def _clip_context_embeddings(self, segments: torch.Tensor, lengths: torch.Tensor):
        """The batch's consecutive segments as one span, encoded once (training encoded the
        whole clip: the same within a span, up to frames near the span's ends)."""
        hop, window = self.hop_samples, self.window_samples
        span = torch.cat([segments[0], *(s[max(window - hop, 0) :] for s in segments[1:])])
        valid = int((len(segments) - 1) * hop + lengths[-1])
        starts = torch.arange(len(segments)) * hop
        return self.model.backbone.embed_clip(span[:valid].to(self.device), starts, window)

    def segment_row(
        self, index: int, probabilities: list[float], prediction: str
    ) -> dict[str, Any]:
        """One row of the segments CSV."""
        start = index * self.hop_samples / self.sample_rate
        row = {"segment": index, "start_s": round(start, 4)}
        row |= {"end_s": round(start + self.window_seconds, 4), "prediction": prediction}
        return row | {
            f"p_{c}": round(p, 6) for c, p in zip(self.classes, probabilities, strict=True)
        }

    def predict_file(
        self, info: AudioInfo, out_dir: Path, stem: str, block_seconds: float, progress: Progress
    ) -> dict[str, Any]:
        """Write the file's segments CSV (row by row), JSON summary and timeline; return its
        summary.csv row. Memory holds the segments' logits (C floats each), never the audio."""
        samples = round(info.frames * self.sample_rate / info.sample_rate_hz)  # soxr's length
        expected = count_segments(
            samples, self.sample_rate, self.window_seconds, self.hop_seconds, self.tail
        )
        logits: list[torch.Tensor] = []
        timeline = Timeline(
            self.classes, expected, self.hop_seconds, self.window_seconds, TIMELINE_BINS
        )
        task = progress.add_task(stem, total=info.duration_seconds, segments=0)
        header = {
            "file": str(info.path),
            "output": stem,
            "duration_s": info.duration_seconds,
            "sample_rate_hz": info.sample_rate_hz,
            "channels": info.channels,
            "model_sample_rate_hz": self.sample_rate,
            "window_seconds": self.window_seconds,
            "hop_seconds": self.hop_seconds,
            "classes": self.classes,
        }
        statistics = self.file_statistics.get(info.path)  # a speaker_norm model's, if given
        if self.speaker_norm is not None:
            header["speaker_norm"] = (statistics or by_speaker.NO_SPEAKER).note()
        given = {} if statistics is None else {"statistics": statistics}
        paths = [out_dir / f"{stem}.segments.csv", out_dir / f"{stem}.json"]
        partial = [path.with_name(path.name + ".partial") for path in paths]
        try:  # rows go to disk as they come; the final names appear only for a complete file
            with open(partial[0], "w", newline="") as csv_file:
                rows = csv.DictWriter(csv_file, fieldnames=self.columns)
                rows.writeheader()
                cutting = (self.sample_rate, self.window_seconds, self.hop_seconds)
                for batch in stream_segments(
                    info, *cutting, self.batch_size, block_seconds, self.tail
                ):
                    lengths = self.lengths(batch.first_index, len(batch.segments), samples)
                    arguments = (batch.segments,) if lengths is None else (batch.segments, lengths)
                    logits.append(self.logits(*arguments, **given))
                    probabilities = logits[-1].softmax(dim=1)
                    # the clip table's rule: ties go to the lowest class, NaN/Inf reads "none"
                    predictions = segment_predictions(logits[-1]).tolist()
                    for i, (p, best) in enumerate(
                        zip(probabilities.tolist(), predictions, strict=True),
                        start=batch.first_index,
                    ):
                        rows.writerow(self.segment_row(i, p, decision_name(self.classes, best)))
                    timeline.add(batch.first_index, probabilities)
                    segments = batch.first_index + len(probabilities)
                    progress.update(task, completed=batch.seconds_read, segments=segments)
            clip = clip_decisions(torch.cat(logits), self.classes)
            partial[1].write_text(json.dumps({**header, "clip": clip}, indent=1) + "\n")
        except BaseException:
            for path in partial:
                path.unlink(missing_ok=True)
            raise
        for path, final in zip(partial, paths, strict=True):
            os.replace(path, final)
        mean_logits, majority = clip["mean_logits"]["prediction"], clip["majority"]["prediction"]
        title = f"{info.path.name}: mean logits (ALCA) {mean_logits}, majority vote {majority}"
        timeline.plot(out_dir / f"{stem}.timeline.png", f"{title} ({clip['segments']} segments)")
        return {
            **{key: header[key] for key in ("file", "output", "duration_s")},
            "segments": clip["segments"],
            "clip_mean_logits": mean_logits,
            "clip_majority": majority,
            **{f"p_{c}": round(p, 6) for c, p in clip["mean_probabilities"].items()},
        }


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SegserError("--device cuda: no CUDA device is visible. Use --device cpu or auto.")
    return torch.device(name)


def predict(
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    out_dir: Path,
    batch_size: int = 64,
    device: str = "auto",
    recursive: bool = False,
    block_seconds: float = 30.0,
    one_speaker: bool = False,
    speakers: Path | None = None,
    min_speaker_seconds: float = by_speaker.MIN_SPEAKER_SECONDS,
) -> tuple[list[dict[str, Any]], list[SegserError]]:
    """Predict every input file; a bad one is reported and skipped. Returns summary rows, errors.
    `one_speaker` / `speakers` (CSV path,speaker): whose voice each file is (predict/speakers)."""
    predictor = Predictor(checkpoint, pick_device(device), batch_size)
    found = find_audio(inputs, recursive)
    files = [entry for entry in found if isinstance(entry, Path)]
    stems = dict(zip(files, output_stems(files), strict=True))
    console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    groups = by_speaker.speaker_groups(files, one_speaker, speakers)
    if predictor.speaker_norm is not None:
        reading = (batch_size, block_seconds, min_speaker_seconds, console.print)
        predictor.file_statistics = by_speaker.file_statistics(files, groups, predictor, *reading)
    elif one_speaker or speakers is not None:
        console.print("note: the model was trained without data.speaker_norm: speakers unused")
    done = TextColumn("{task.completed:.0f}/{task.total:.0f} s, {task.fields[segments]} segments")
    columns = (TextColumn("{task.description}"), BarColumn(), done, TimeRemainingColumn())
    progress = Progress(*columns, console=console)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["file", "output", "duration_s", "segments", "clip_mean_logits", "clip_majority"]
    columns += [*(f"p_{c}" for c in predictor.classes), "error"]
    rows, errors = [], []
    with open(out_dir / "summary.csv", "w", newline="") as handle, progress:
        summary = csv.DictWriter(handle, fieldnames=columns)
        summary.writeheader()
        for entry in found:
            try:
                if isinstance(entry, SegserError):  # an input find_audio could not use
                    raise entry
                info = audio_info(entry)
                row = predictor.predict_file(info, out_dir, stems[entry], block_seconds, progress)
            except SegserError as error:
                errors.append(error)
                console.print(f"error: {error}")
                row = {"file": str(entry if isinstance(entry, Path) else entry.path)}
                row |= {"output": stems.get(entry, ""), "error": str(error)}
            rows.append(row)
            summary.writerow(row)
            handle.flush()  # a later crash or Ctrl-C keeps the rows already done
    return rows, errors


def new_output_dir(parent: Path) -> Path:
    """parent/<date>_<time>, created here; a run started in the same second gets -2, -3, ..."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = parent / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()  # atomic: of two runs, exactly one creates each name
                return path
            except FileExistsError:
                continue
    except OSError as error:
        message = f"{parent}: cannot create an output folder ({error.strerror}). Pass --out DIR."
        raise SegserError(message) from None
    raise SegserError(f"{parent}: 999 output folders named {stamp}*. Pass --out DIR.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segser.predict", description=__doc__)
    parser.add_argument("checkpoint", help="a .ckpt written by python -m segser.train")
    parser.add_argument("inputs", nargs="+", help="audio files or folders of audio files")
    parser.add_argument("--out", type=Path, help="output folder (default outputs/predict/<time>)")
    parser.add_argument("--batch-size", type=int, default=64, help="segments per model call")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--recursive", action="store_true", help="search folders' subfolders")
    parser.add_argument("--block-seconds", type=float, default=30.0, help="audio read at once")
    parser.add_argument("--one-speaker", action="store_true", help="every input: one speaker")
    parser.add_argument("--speakers", type=Path, help="CSV path,speaker: whose voice each file is")
    least = by_speaker.MIN_SPEAKER_SECONDS
    parser.add_argument("--min-speaker-seconds", type=float, default=least,
                        help="a speaker's audio for their own statistics")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        out_dir = args.out or new_output_dir(output_root() / "predict")
        if args.batch_size < 1 or not args.block_seconds > 0:
            raise SegserError("--batch-size and --block-seconds must be positive.")
        options = (args.batch_size, args.device, args.recursive, args.block_seconds)
        speaker_options = (args.one_speaker, args.speakers, args.min_speaker_seconds)
        rows, errors = predict(args.checkpoint, args.inputs, out_dir, *options, *speaker_options)
    except SegserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = sum("error" not in row for row in rows)
    failed = f"; {len(errors)} input(s) failed, see the errors above" if errors else ""
    print(f"Predictions for {done} file(s) written to {out_dir}{failed}")
    return 2 if errors else 0
