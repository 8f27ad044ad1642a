"""What the featurizers share: their configuration (``influence_stage.config.featurize``) and the running
mean / variance used to standardise."""

from __future__ import annotations

import numpy as np

from influence_stage.config.featurize import ON_DISK_ABOVE_BYTES, FeaturizeConfig



def safe_scale(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``std`` with 1.0 where a column is constant (std at rounding level of its mean)."""
    # A constant column is only centred: dividing by its ~1e-17 rounding std would blow noise up.
    return np.where(std > 1e-9 * np.maximum(1.0, np.abs(mean)), std, 1.0)


class Welford:
    """Column means and population standard deviations over batches (Chan's merge; stable)."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def update(self, block: np.ndarray) -> None:
        m = block.shape[0]
        if m == 0:
            return
        b_mean = block.mean(axis=0)
        b_m2 = ((block - b_mean) ** 2).sum(axis=0)
        delta = b_mean - self.mean
        total = self.n + m
        self.mean = self.mean + delta * (m / total)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.n * m / total)
        self.n = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))
