"""Input drift: how far live images sit from the training images, as a z-score.

The definition is in `serving.metrics`' module docstring; the reference numbers come from the
prepare stage's ``reports/metrics/prepare.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doodle.constants import BINARY_INK_LEVEL  # as in the prepare stage's ink_fraction


@dataclass(frozen=True)
class DriftReference:
    image_mean_mean: float
    image_mean_std: float
    ink_fraction_mean: float
    ink_fraction_std: float

    @classmethod
    def from_prepare_metrics(cls, path: Path) -> DriftReference:
        """Read the four reference statistics; raise `ValueError` or `OSError` if unusable."""
        stats = json.loads(Path(path).read_text())
        reference = cls(
            image_mean_mean=float(stats["image_mean_mean"]),
            image_mean_std=float(stats["image_mean_std"]),
            ink_fraction_mean=float(stats["ink_fraction_mean"]),
            ink_fraction_std=float(stats["ink_fraction_std"]),
        )
        if not (reference.image_mean_std > 0 and reference.ink_fraction_std > 0):
            raise ValueError(f"{path}: reference standard deviations must be positive")
        return reference

    def score(self, images: np.ndarray) -> float:
        """``(N, 784)`` float in [0, 1] -> max(|z_mean|, |z_ink|) of the batch-averaged statistics."""
        # images.mean() and (images > t).mean(), by the same arithmetic without np.mean's overhead.
        mean_intensity = float(images.sum() / images.size)
        ink_fraction = np.count_nonzero(images > BINARY_INK_LEVEL) / images.size
        z_mean = (mean_intensity - self.image_mean_mean) / self.image_mean_std
        z_ink = (ink_fraction - self.ink_fraction_mean) / self.ink_fraction_std
        return max(abs(z_mean), abs(z_ink))
