"""A 128-d face embedding from dlib's ResNet: the offline stand-in for deep features.

Speed, measured on 128 AffectNet images on this 2-core machine: serial 19.1 s (6.7 img/s);
2 threads 20.8 s (the network holds the GIL; dlib's batched call is no faster either); 2 worker
processes 12.6 s on the first call, 10.5 s once they run. So inputs of ``min_parallel`` images
or more go to processes. A full AffectNet train split (17k images) takes about 25 minutes.
"""

from __future__ import annotations

import numpy as np

from ferkit.features import dlib_models
from ferkit.features.base import Stats, check_int, to_uint8
from ferkit.features.landmarks import DlibFaceExtractor


class DlibEmbedding(DlibFaceExtractor):
    """dlib's 128-d face descriptor of the largest face (or of the whole crop when none is found).

    This is the offline stand-in for the notebook's img2vec ResNet18 features (43.3% with
    an SVM on AffectNet), whose ImageNet weights cannot be downloaded here. The network was
    trained for identity, not expression, so expect it to trail HOG; once ferkit trains its own
    networks, their penultimate layer replaces it.

    The face is aligned with the 68-point landmarks (as :class:`Landmarks68`, same detector and
    fallback, counted in ``n_not_found_``). Gray images are stacked to RGB for the network.
    ``jitter`` > 0 averages over that many random crops: slower, slightly more robust, and not
    reproducible call to call (dlib's random generator), so keep 0 where determinism matters.
    """

    name = "embedding"
    batch_size = 16
    min_parallel = 64

    def __init__(
        self,
        upsample: int = 1,
        jitter: int = 0,
        n_jobs: int = -1,
        progress: bool = True,
        cache: bool = True,
    ) -> None:
        self.upsample = upsample
        self.jitter = jitter
        self.n_jobs = n_jobs
        self.progress = progress
        self.cache = cache

    def _check_params(self) -> None:
        super()._check_params()
        check_int("jitter", self.jitter, 0)
        dlib_models.check_models(dlib_models.RESNET)

    def _extract(self, batch: np.ndarray) -> tuple[np.ndarray, Stats]:
        rows, missed = [], 0
        encoder = dlib_models.face_encoder()
        for image in dlib_models.face_images(to_uint8(batch)):
            face = dlib_models.find_face(image, self.upsample)
            missed += not face.found
            rgb = image if image.ndim == 3 else np.ascontiguousarray(np.stack([image] * 3, -1))
            rows.append(np.asarray(encoder.compute_face_descriptor(rgb, face.shape, self.jitter)))
        return np.stack(rows).astype(np.float32), {"n_not_found": missed}
