"""The classic peer: eGeMAPS functionals (openSMILE) per clip + an SVM (scikit-learn).

88 eGeMAPSv02 functionals per clip, standardised on the training speakers, a linear SVM
(LinearSVC) or an RBF SVM (SVC, gamma "scale") with C chosen on the validation speakers from a
fixed grid and refit on train + val: the recipe of Eyben et al. (2016). Clip-level only, so it
reports UA (mean recall over the classes present) and WA (accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segser.data.corpora.clips import Clip
from segser.data.splits import ClipSplit

C_GRID = (1e-3, 1e-2, 1e-1, 1.0)
RBF_C_GRID = (0.1, 1.0, 10.0, 100.0)  # an RBF SVM needs larger C than a linear one


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


def _svm(c: float, kernel: str = "linear"):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    svm = LinearSVC(C=c, max_iter=20000) if kernel == "linear" else SVC(C=c, kernel=kernel)
    return make_pipeline(StandardScaler(), svm)


def peer_scores(
    features: np.ndarray, labels: Sequence[str], split: ClipSplit, kernel: str = "linear"
) -> dict[str, float]:
    """UA and WA on the split's test clips, C picked by UA on its validation clips."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    y = np.asarray(labels)
    train, val, test = (np.asarray(part) for part in (split.train, split.val, split.test))
    grid = C_GRID if kernel == "linear" else RBF_C_GRID
    val_ua = [
        balanced_accuracy_score(
            y[val], _svm(c, kernel).fit(features[train], y[train]).predict(features[val])
        )
        for c in grid
    ]
    best_c = grid[int(np.argmax(val_ua))]
    fit_on = np.concatenate([train, val])
    predicted = _svm(best_c, kernel).fit(features[fit_on], y[fit_on]).predict(features[test])
    return {
        "UA": float(balanced_accuracy_score(y[test], predicted)),
        "WA": float(accuracy_score(y[test], predicted)),
        "C": best_c,
    }
