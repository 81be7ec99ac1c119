"""The classic peer: eGeMAPS functionals (openSMILE) per clip + a linear SVM (scikit-learn).

88 eGeMAPSv02 functionals per clip, standardised on the training speakers, LinearSVC with C
chosen on the validation speakers from a fixed grid and refit on train + val: the recipe of
Eyben et al. (2016). Clip-level only, so it reports UA (mean recall over the classes present)
and WA (accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segser.data.corpora.clips import Clip
from segser.data.splits import ClipSplit

C_GRID = (1e-3, 1e-2, 1e-1, 1.0)


def egemaps_functionals(clips: Sequence[Clip], cache_file: Path | None = None) -> np.ndarray:
    """[clips, 88] eGeMAPSv02 functionals, cached as .npy beside the bench's feature cache."""
    if cache_file is not None and cache_file.is_file():
        cached = np.load(cache_file)
        if cached.shape[0] == len(clips):
            return cached
    import opensmile

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    features = np.stack([smile.process_file(str(c.path)).to_numpy()[0] for c in clips])
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache_file, features)
    return features


def _svm(c: float):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000))


def peer_scores(features: np.ndarray, labels: Sequence[str], split: ClipSplit) -> dict[str, float]:
    """UA and WA on the split's test clips, C picked by UA on its validation clips."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    y = np.asarray(labels)
    train, val, test = (np.asarray(part) for part in (split.train, split.val, split.test))
    val_ua = [
        balanced_accuracy_score(
            y[val], _svm(c).fit(features[train], y[train]).predict(features[val])
        )
        for c in C_GRID
    ]
    best_c = C_GRID[int(np.argmax(val_ua))]
    fit_on = np.concatenate([train, val])
    predicted = _svm(best_c).fit(features[fit_on], y[fit_on]).predict(features[test])
    return {
        "UA": float(balanced_accuracy_score(y[test], predicted)),
        "WA": float(accuracy_score(y[test], predicted)),
        "C": best_c,
    }
