"""The distribution of the final distance under the random-feature model of App. A.6 (eqs. 41-48).

The initial weights set ``A_high`` of eq. (11) at random. App. A.6 models ``dh_sq0/dx_sq`` and
``dy_sq0/dh_sq0`` as independent draws from ``N(G, G^2)``, where ``G`` (``init_scale`` here) is the
scale of the initial weights (it grows with the initialisation gain), and pushes that law through
eq. (10). Notation: see :mod:`repalign.theory`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .. import _validate as v
from .fixed_point import _stable_root

__all__ = ["final_distance_cdf", "final_distance_pdf", "sample_final_distance"]


def _physical(rate_h, rate_y, dx_sq, dy_target_sq, init_scale) -> tuple[float, float, float, float, float]:
    return (
        float(v.positive("rate_h", rate_h)),
        float(v.positive("rate_y", rate_y)),
        float(v.positive("dx_sq", dx_sq)),
        float(v.non_negative("dy_target_sq", dy_target_sq)),
        float(v.positive("init_scale", init_scale)),
    )


def _density_args(h, rate_h, rate_y, dx_sq, dy_target_sq, init_scale):
    """Validated ``h`` and the three constants of eqs. (47)-(48): ``A_low^2`` and ``A_high``'s mean and std."""
    h = v.positive("h", h)
    rate_h, rate_y, dx_sq, dy_target_sq, init_scale = _physical(rate_h, rate_y, dx_sq, dy_target_sq, init_scale)
    a_low_sq = (rate_h / rate_y) * dx_sq * dy_target_sq
    tau_y_over_tau_h = rate_h / rate_y
    mean = dx_sq * init_scale * (1.0 - tau_y_over_tau_h)
    std = dx_sq * init_scale * np.sqrt(1.0 + tau_y_over_tau_h**2)
    return h, a_low_sq, mean, std


def final_distance_cdf(h, *, rate_h, rate_y, dx_sq, dy_target_sq, init_scale) -> np.ndarray:
    """``P(||dh(inf)||^2 < h)`` under the random-feature model of App. A.6, eq. (47), generalised.

    App. A.6 takes ``dh_sq0/dx_sq ~ N(G, G^2)`` and ``dy_sq0/dh_sq0 ~ N(G, G^2)`` independent, so
    ``A_high ~ N(dx_sq G (1 - rho), dx_sq^2 G^2 (1 + rho^2))`` with ``rho = tau_y/tau_h``; the paper's
    eq. (46) drops ``rho`` (it is exact for ``tau_y = tau_h``). Then
    ``P(||dh(inf)||^2 < h) = Phi((h - A_low^2/h - mean) / std)`` for ``h > 0``.

    Parameters
    ----------
    h : array_like
        Distances at which to evaluate (> 0).
    rate_h, rate_y, dx_sq, dy_target_sq : float, keyword-only
        As in :func:`repalign.theory.final_distance`.
    init_scale : float, keyword-only
        The paper's ``G``, the scale of the initial weights (> 0).

    Examples
    --------
    >>> p = final_distance_cdf([0.5, 1.0], rate_h=1.0, rate_y=1.0, dx_sq=1.0, dy_target_sq=0.5, init_scale=1e-3)
    >>> bool(p[0] < 0.01 and p[1] > 0.99)  # small weights: the mass sits at A_low = 0.707
    True
    """
    h, a_low_sq, mean, std = _density_args(h, rate_h, rate_y, dx_sq, dy_target_sq, init_scale)
    return ndtr((h - a_low_sq / h - mean) / std)


def final_distance_pdf(h, *, rate_h, rate_y, dx_sq, dy_target_sq, init_scale) -> np.ndarray:
    """Density of ``||dh(inf)||^2`` under App. A.6, eq. (48), generalised as in :func:`final_distance_cdf`.

    Parameters as in :func:`final_distance_cdf`.
    """
    h, a_low_sq, mean, std = _density_args(h, rate_h, rate_y, dx_sq, dy_target_sq, init_scale)
    arg = (h - a_low_sq / h - mean) / std
    return (1.0 + a_low_sq / h**2) / std * np.exp(-0.5 * arg**2) / np.sqrt(2.0 * np.pi)


def sample_final_distance(n: int, *, rate_h, rate_y, dx_sq, dy_target_sq, init_scale, seed: int) -> np.ndarray:
    """Monte Carlo draws of ``||dh(inf)||^2`` under the assumptions of App. A.6.

    Draws ``dh_sq0/dx_sq`` and ``dy_sq0/dh_sq0`` from ``N(G, G^2)`` (independently, as the paper
    does; negative draws are kept, as in the paper's Gaussian model) and applies eqs. (10)-(11).
    Parameters as in :func:`final_distance_cdf`; ``seed`` seeds ``numpy.random.default_rng``.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}")
    rate_h, rate_y, dx_sq, dy_target_sq, init_scale = _physical(rate_h, rate_y, dx_sq, dy_target_sq, init_scale)
    rng = np.random.default_rng(seed)
    r_h, r_y = rng.normal(init_scale, init_scale, size=(2, n))
    a_high = dx_sq * (r_h - (rate_h / rate_y) * r_y)
    a_low = np.sqrt((rate_h / rate_y) * dx_sq * dy_target_sq)
    return v.finite_output(_stable_root(a_high, a_low), "the sampled final distances",
                           "lower `init_scale` or the rates")
