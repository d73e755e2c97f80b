"""The seed's SVM on feature vectors, with an exact and a fast solver behind one estimator.

``exact`` is scikit-learn's SVC on standardised features, as the seed used (its HOG fit took 24
minutes). ``fast`` standardises, reduces with whitened PCA, maps to an approximate RBF feature
space (Nystroem) and fits a linear SVM: cost grows linearly with the number of samples instead
of quadratically. Both take the seed's hyper-parameters (kernel, C, gamma), so GridSearchCV
searches them the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.kernel_approximation import Nystroem
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.utils.validation import check_is_fitted

METHODS = ("exact", "fast")
SEED_GRID: list[dict[str, list[Any]]] = [
    {"kernel": ["linear"], "C": [0.01, 0.1, 1, 10]},
    {"kernel": ["rbf"], "C": [0.01, 0.1, 1, 10], "gamma": [0.001, 0.01, 0.1, "scale"]},
]


class SVMClassifier(ClassifierMixin, BaseEstimator):
    """An SVM on feature vectors: ``method="exact"`` (SVC) or ``"fast"`` (PCA+Nystroem+linear).

    ``gamma="scale"`` means 1 / n_dims on the standardised (or whitened) input, which is what
    SVC's "scale" gives for unit-variance features.
    """

    def __init__(
        self,
        method: str = "exact",
        kernel: str = "rbf",
        C: float = 1.0,
        gamma: float | str = "scale",
        pca_components: int = 256,
        nystroem_components: int = 2048,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.pca_components = pca_components
        self.nystroem_components = nystroem_components
        self.random_state = random_state

    def _gamma(self, dims: int) -> float:
        return 1.0 / dims if self.gamma == "scale" else float(self.gamma)

    def _build(self, n_samples: int, n_features: int) -> Pipeline:
        if self.method not in METHODS:
            raise ValueError(f"unknown SVM method {self.method!r}; use exact or fast")
        if self.kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be linear or rbf, not {self.kernel!r}")
        steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
        if self.method == "exact":
            svc = SVC(
                kernel=self.kernel,
                C=self.C,
                gamma=self._gamma(n_features),
                random_state=self.random_state,
            )
            return Pipeline([*steps, ("svm", svc)])
        dims = min(self.pca_components, n_features, n_samples)
        if dims < n_features:
            steps.append(
                ("pca", PCA(n_components=dims, whiten=True, random_state=self.random_state))
            )
        if self.kernel == "rbf":
            comps = min(self.nystroem_components, n_samples)
            steps.append(
                (
                    "rbf",
                    Nystroem(
                        gamma=self._gamma(dims), n_components=comps, random_state=self.random_state
                    ),
                )
            )
        svm = LinearSVC(C=self.C, max_iter=5000, random_state=self.random_state)
        return Pipeline([*steps, ("svm", svm)])

    def fit(self, X: np.ndarray, y: np.ndarray) -> SVMClassifier:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"features must be a 2-D array (samples, features), got {X.shape}")
        if not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).any(axis=1).sum())
            raise ValueError(f"features contain NaN or infinite values in {bad} sample(s)")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"an SVM needs at least 2 classes, got {len(self.classes_)}")
        self.pipeline_ = self._build(*X.shape).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        X = np.asarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            raise ValueError("features contain NaN or infinite values")
        return self.pipeline_.predict(X)
