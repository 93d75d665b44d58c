"""Helpers for recorded trajectories ``(t, z)`` shared by :mod:`repalign.fit` and :mod:`repalign.falsification`."""

from __future__ import annotations

import numpy as np

from . import _validate as v


def validate(t, z) -> tuple[np.ndarray, np.ndarray]:
    """Validate record times and states: t strictly increasing, z (n, 3), n >= 3, distances >= 0."""
    t = v.finite_array("t", t, ndim=1)
    z = v.finite_array("z", z, ndim=2)
    if z.shape[1] != 3:
        raise ValueError(f"`z` must have shape (n, 3) with columns dh_sq, dy_sq, w, got shape {z.shape}")
    if z.shape[0] != t.size:
        raise ValueError(f"`t` and `z` must have the same number of records, got len(t) = {t.size} and "
                         f"len(z) = {z.shape[0]}")
    if t.size < 3:
        raise ValueError(f"`t` and `z` need at least 3 records to fit, got {t.size}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("`t` must be strictly increasing (sort the records by time)")
    if np.any(z[:, :2] < 0):
        raise ValueError("`z[:, 0]` (dh_sq) and `z[:, 1]` (dy_sq) are squared distances and must be >= 0")
    return t, z


def scales(m: np.ndarray) -> np.ndarray:
    """Per column of ``m`` (n, q): the range, else the largest absolute value, else 1.

    The fallback 1 keeps a column that is identically zero in absolute units (any smaller fallback
    would turn a rounding-size residual in it into a huge normalised error).
    """
    scale = m.max(axis=0) - m.min(axis=0)
    scale = np.where(scale > 0, scale, np.abs(m).max(axis=0))
    return np.where(scale > 0, scale, 1.0)


def subsample(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``m`` of ``n`` record indices, half evenly spaced and half log-spaced (early transients are fast),
    with weights (the number of records each stands for) so that weighted sums approximate sums over all."""
    if n <= m:
        return np.arange(n), np.ones(n)
    idx = np.unique(np.concatenate([np.round(np.linspace(0, n - 1, m // 2)),
                                    np.round(np.geomspace(1, n - 1, m - m // 2))]).astype(int))
    weight = np.diff(np.concatenate([[idx[0]], idx, [idx[-1]]]).astype(float))
    weight = 0.5 * (weight[:-1] + weight[1:])
    weight[[0, -1]] += 0.5  # the end records stand for themselves too: weights sum to n
    return idx, weight
