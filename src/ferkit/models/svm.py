"""The notebook's SVM on feature vectors, with an exact and two fast solvers behind one estimator.

``exact`` is scikit-learn's SVC on standardised features, as the notebook used (its HOG fit took 24
minutes). ``pca`` is the same SVC on the first 256 principal components: an RBF kernel's cost
is proportional to the dimension and HOG's 4,356 dimensions are highly redundant, so it keeps
the exact kernel machine at a fraction of the time. ``fast`` standardises, reduces with PCA,
maps to an approximate RBF feature space (Nystroem) and fits a linear head: cost grows
linearly with the number of samples instead of quadratically. All take the notebook's
hyper-parameters (kernel, C, gamma), so GridSearchCV searches them the same way.

Measured in one process on one dedicated core (``benchmarks/svm_fast_vs_exact.py``,
affectnet_yolo HOG, train undersampled by 750 -> valid, rbf C=10 gamma=scale, 2026-11-22):
exact 53.6% in 1,419 s; pca-256 54.1% in 90 s (15.7x less); pca-192 53.6% in 69 s; pca-128
52.6% in 39 s. Hence ``pca`` with 256 components is the recommended fast path. The Nystroem
path reached 51.5% (ridge head) to 52.3% (``head="hinge"``, ~3x slower) in an earlier
session; whitening the PCA hurt it (it blows up noise directions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.utils.validation import check_is_fitted

from ferkit.errors import FerkitError, OptionError

METHODS = ("exact", "pca", "fast")
# PCA dimensions when ``pca_components`` is left at None: the reduced-SVC path needs few (its
# cost is samples^2 x dims), the Nystroem path more (its head is linear).
DEFAULT_PCA = {"pca": 256, "fast": 512}
NOTEBOOK_GRID: list[dict[str, list[Any]]] = [
    {"kernel": ["linear"], "C": [0.01, 0.1, 1, 10]},
    {"kernel": ["rbf"], "C": [0.01, 0.1, 1, 10], "gamma": [0.001, 0.01, 0.1, "scale"]},
]


HEADS = ("ridge", "hinge")


class SVMClassifier(ClassifierMixin, BaseEstimator):
    """An SVM on feature vectors: ``method="exact"`` (SVC), ``"pca"`` (SVC on PCA-reduced
    features) or ``"fast"`` (PCA + Nystroem + a linear head: ``ridge``, a least-squares SVM, or
    ``hinge``, LinearSVC).

    ``gamma="scale"`` means 1 / (n_dims * variance) of the kernel's input, as SVC defines it.
    """

    def __init__(
        self,
        method: str = "exact",
        kernel: str = "rbf",
        C: float = 1.0,
        gamma: float | str = "scale",
        pca_components: int | None = None,
        nystroem_components: int = 4096,
        head: str = "ridge",
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.pca_components = pca_components
        self.nystroem_components = nystroem_components
        self.head = head
        self.random_state = random_state

    def _gamma(self, x: np.ndarray) -> float:
        if self.gamma != "scale":
            return float(self.gamma)
        return 1.0 / (x.shape[1] * max(float(x.var()), 1e-12))

    def _check(self) -> None:
        if self.method not in METHODS:
            raise OptionError(f"unknown SVM method {self.method!r}; use exact, pca or fast")
        if self.kernel not in ("linear", "rbf"):
            raise OptionError(f"kernel must be linear or rbf, not {self.kernel!r}")
        if self.head not in HEADS:
            raise OptionError(f"head must be ridge or hinge, not {self.head!r}")
        if self.gamma != "scale":
            try:
                float(self.gamma)
            except (TypeError, ValueError):
                raise OptionError(f"gamma must be scale or a number, not {self.gamma!r}") from None

    def _fit_exact(self, X: np.ndarray, y: np.ndarray) -> Pipeline:
        steps, z = self._reduce(X, reduce=self.method == "pca")
        svc = SVC(
            kernel=self.kernel,
            C=self.C,
            gamma=self._gamma(z),
            cache_size=1000,
            random_state=self.random_state,
        ).fit(z, y)
        return Pipeline([*steps, ("svm", svc)])

    def _reduce(self, X: np.ndarray, reduce: bool) -> tuple[list[tuple[str, Any]], np.ndarray]:
        """Standardise, then (``reduce``) project on the leading principal components."""
        steps: list[tuple[str, Any]] = [("scale", StandardScaler().fit(X))]
        z = steps[0][1].transform(X)
        wanted = self.pca_components or DEFAULT_PCA.get(self.method, 512)
        dims = min(wanted, X.shape[1], X.shape[0])
        if reduce and dims < X.shape[1]:
            pca = PCA(n_components=dims, random_state=self.random_state).fit(z)
            steps.append(("pca", pca))
            z = pca.transform(z)
        return steps, z

    def _fit_fast(self, X: np.ndarray, y: np.ndarray) -> Pipeline:
        steps, z = self._reduce(X, reduce=True)
        if self.kernel == "rbf":
            comps = min(self.nystroem_components, X.shape[0])
            rbf = Nystroem(
                gamma=self._gamma(z), n_components=comps, random_state=self.random_state
            ).fit(z)
            steps.append(("rbf", rbf))
            z = rbf.transform(z)
        if self.head == "ridge":
            head: Any = RidgeClassifier(alpha=1.0 / self.C)
        else:
            head = LinearSVC(C=self.C, max_iter=5000, random_state=self.random_state)
        return Pipeline([*steps, ("svm", head.fit(z, y))])

    def fit(self, X: np.ndarray, y: np.ndarray) -> SVMClassifier:
        self._check()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise FerkitError(f"features must be a 2-D array (samples, features), got {X.shape}")
        if not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).any(axis=1).sum())
            raise FerkitError(f"features contain NaN or infinite values in {bad} sample(s)")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise FerkitError(f"an SVM needs at least 2 classes, got {len(self.classes_)}")
        fit = self._fit_fast if self.method == "fast" else self._fit_exact
        self.pipeline_ = fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        X = np.asarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            raise FerkitError("features contain NaN or infinite values")
        return self.pipeline_.predict(X)
