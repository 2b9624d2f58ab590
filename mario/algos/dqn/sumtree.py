"""Sum and min segment trees for prioritized replay."""

from __future__ import annotations

import numpy as np
import torch


class PriorityTree:
    """Sum and min segment trees over ``size`` float64 leaves (NumPy on the host).

    Every update recomputes the touched paths from their children, so each internal node is a
    pure function of the leaves: a tree rebuilt from saved leaves samples exactly like the
    original. A zero leaf is absent: never found by :meth:`find`, ignored by :meth:`min`.
    NumPy rather than torch because the work is many tiny gathers (one per tree level), where
    NumPy's per-call cost is several times lower.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._depth = max(1, (size - 1).bit_length())
        self._base = 1 << self._depth
        self._sum = np.zeros(2 * self._base, dtype=np.float64)
        self._min = np.full(2 * self._base, np.inf, dtype=np.float64)

    @property
    def nbytes(self) -> int:
        return self._sum.nbytes + self._min.nbytes

    def set(self, index: torch.Tensor, value: torch.Tensor) -> None:
        """Set leaves ``index`` (unique int64) to ``value`` (float64, 0 = absent)."""
        node = index.numpy() + self._base
        leaf = value.numpy()
        self._sum[node] = leaf
        self._min[node] = np.where(leaf > 0, leaf, np.inf)
        for _ in range(self._depth):
            node = node >> 1
            left = node << 1
            self._sum[node] = self._sum[left] + self._sum[left + 1]
            self._min[node] = np.minimum(self._min[left], self._min[left + 1])

    def total(self) -> float:
        return float(self._sum[1])

    def min(self) -> float:
        return float(self._min[1])

    def get(self, index: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._sum[index.numpy() + self._base])

    def leaves(self) -> torch.Tensor:
        return torch.from_numpy(self._sum[self._base : self._base + self.size].copy())

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """Leaf whose prefix-sum interval holds ``mass`` (float64 in (0, total])."""
        remaining = mass.numpy().copy()
        node = np.ones(remaining.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = node << 1
            left_sum = self._sum[left]
            right = remaining > left_sum
            remaining -= np.where(right, left_sum, 0.0)
            node = left + right
        return torch.from_numpy(node - self._base)

    def load(self, leaves: torch.Tensor) -> None:
        """Replace all leaves and rebuild the trees bottom-up."""
        values = leaves.numpy()
        self._sum[:] = 0.0
        self._sum[self._base : self._base + self.size] = values
        self._min[:] = np.inf
        self._min[self._base : self._base + self.size] = np.where(values > 0, values, np.inf)
        for level in range(self._depth - 1, -1, -1):
            lo, hi = 1 << level, 2 << level
            self._sum[lo:hi] = self._sum[2 * lo : 2 * hi : 2] + self._sum[2 * lo + 1 : 2 * hi : 2]
            self._min[lo:hi] = np.minimum(
                self._min[2 * lo : 2 * hi : 2], self._min[2 * lo + 1 : 2 * hi : 2]
            )
