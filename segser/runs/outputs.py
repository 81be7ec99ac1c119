"""What a finished run leaves in its directory: metrics.json, predictions.csv, confusion PNG."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segser.metrics.clip_accuracy import ClipSummary, decision_name, segment_predictions
from segser.metrics.collection import ACCURACY_NAMES
from segser.runs.plots import plot_confusion_matrix


def metrics_payload(
    results: dict[str, torch.Tensor], classes: Sequence[str], **context: Any
) -> dict[str, Any]:
    """The test results as plain JSON data, with whatever context the caller adds."""
    recall = results["per_class_recall"].tolist()
    return {
        "metrics": {name: float(results[name]) for name in ACCURACY_NAMES},
        "per_class_recall": {
            c: (None if np.isnan(r) else r) for c, r in zip(classes, recall, strict=True)
        },
        "confusion_matrix": results["confusion_matrix"].tolist(),
        "classes": list(classes),
        **context,
    }


def write_metrics(run_dir: Path, payload: dict[str, Any]) -> Path:
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(payload, indent=2))
    plot_confusion_matrix(
        np.asarray(payload["confusion_matrix"]),
        payload["classes"],
        run_dir / "confusion_matrix.png",
        title=f"test ALCA {payload['metrics']['ALCA']:.3f} (clip-level, mean-logits rule)",
    )
    return path


def prediction_rows(
    clips: ClipSummary,
    segment_index: np.ndarray,
    clip_names: Sequence[str],
    classes: Sequence[str],
    hop_seconds: float,
    window_seconds: float,
) -> list[dict[str, Any]]:
    """One row per segment of the clip table, carrying its clip's decisions by both clip rules."""
    probabilities = clips.segment_logits.softmax(dim=1).tolist()
    mean_logits = clips.mean_logits_prediction[clips.segment_clip].tolist()
    majority = clips.majority_prediction[clips.segment_clip].tolist()
    segment_prediction = segment_predictions(clips.segment_logits).tolist()
    rows = []
    for i, k in enumerate(clips.segment_clip.tolist()):
        start = float(segment_index[i]) * hop_seconds
        rows.append(
            {
                "clip_id": clip_names[int(clips.clip_ids[k])],
                "segment": int(segment_index[i]),
                "start_s": round(start, 3),
                "end_s": round(start + window_seconds, 3),
                "label": classes[int(clips.target[k])],
                "segment_prediction": decision_name(classes, segment_prediction[i]),
                **{f"p_{c}": round(p, 5) for c, p in zip(classes, probabilities[i], strict=True)},
                "clip_prediction_mean_logits": decision_name(classes, mean_logits[i]),
                "clip_prediction_majority": decision_name(classes, majority[i]),
            }
        )
    return rows


def write_predictions(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    path = run_dir / "predictions.csv"
    with open(path, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path
